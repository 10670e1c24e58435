//! Compiles `proto/ServerSideExtension.proto` with a vendored `protoc` (so a plain `cargo build`
//! works on a machine that has none), and generates the host's own `qlik.sse.Connector` service,
//! whose streaming methods carry raw protobuf bytes through `crate::wire::codec` instead of `BundledRows`.

use tonic_build::manual::{Builder, Method, Service};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().build_client(true).build_server(true).compile_with_config(
        config,
        &["proto/ServerSideExtension.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto/ServerSideExtension.proto");

    let streaming = |name: &str, route: &str| {
        Method::builder()
            .name(name)
            .route_name(route)
            .input_type("crate::wire::codec::WireRows")
            .output_type("crate::wire::codec::EncodedRows")
            .codec_path("crate::wire::codec::RowsCodec")
            .client_streaming()
            .server_streaming()
            .build()
    };
    let connector = Service::builder()
        .name("Connector")
        .package("qlik.sse")
        .method(
            Method::builder()
                .name("get_capabilities")
                .route_name("GetCapabilities")
                .input_type("crate::wire::pb::Empty")
                .output_type("crate::wire::pb::Capabilities")
                .codec_path("tonic_prost::ProstCodec")
                .build(),
        )
        .method(streaming("execute_function", "ExecuteFunction"))
        .method(streaming("evaluate_script", "EvaluateScript"))
        .build();
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("wire");
    std::fs::create_dir_all(&out)?;
    Builder::new().build_client(false).out_dir(out).compile(&[connector]);
    Ok(())
}
