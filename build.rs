//! Compiles `proto/ServerSideExtension.proto` with a vendored `protoc`, so a plain `cargo build` works
//! on a machine that has none installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().build_client(true).build_server(true).compile_with_config(
        config,
        &["proto/ServerSideExtension.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto/ServerSideExtension.proto");
    Ok(())
}
