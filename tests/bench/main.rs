//! `make bench`: the host's figures, measured on this machine through the real gRPC interface.
//!
//! Sections: `reload` (hot-reload latency and start-up from a warm cache). Pass section names to
//! run only those, and `--quick` for smaller sizes.

mod reload;
mod util;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).init();
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let quick = args.iter().any(|a| a == "--quick");
    let sections: Vec<&str> = args.iter().filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    let wanted = |name: &str| sections.is_empty() || sections.contains(&name);

    println!("sse-wasm benchmark on {} ({} cores)", util::machine(), std::thread::available_parallelism()?);
    if wanted("reload") {
        reload::run(quick).await?;
    }
    Ok(())
}
