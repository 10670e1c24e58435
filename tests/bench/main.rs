//! `make bench`: the host's figures, measured on this machine through the real gRPC interface.
//!
//! Sections: `throughput` (rows/s, latency, concurrency and memory, side by side with a plain
//! tonic server and with native functions; `small` runs its one-row calls alone), `reload`
//! (hot-reload latency and start-up from a warm cache), `concurrency` (large calls at once),
//! `scripts` (each script engine's latency, calls/s and rows/s), `datasci` (the data-science
//! engine's latency, rows/s and memory), `analytics` (the ready-made library beside the same
//! functions run natively) and `languages` (a one-row call of each guest language).
//! Pass section names to run only those, and `--quick` for smaller sizes.
//!
//! The binary also serves, for the comparisons: `--serve plain ADDR` runs the plain tonic server,
//! `--serve native ADDR` the sse-wasm host with the same functions in native Rust.

mod analytics;
mod datasci;
mod languages;
mod native;
mod plain;
mod reload;
mod scripts;
mod throughput;
mod util;
mod wire;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).init();
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if let [flag, mode, addr] = args.as_slice()
        && flag == "--serve"
    {
        let addr: std::net::SocketAddr = addr.parse()?;
        return match mode.as_str() {
            "plain" => plain::serve(addr).await,
            "native" => native::serve(addr).await,
            other => anyhow::bail!("unknown server {other}"),
        };
    }
    if let [flag, function, rows] = args.as_slice()
        && flag == "--codec"
    {
        // The bare codec loop alone, for profilers: `--codec SumOfRows 1000000`.
        let rows: usize = rows.parse()?;
        let workload = throughput::workload(function)?;
        let messages = wire::encode(rows, throughput::BUNDLE, workload);
        let rate = native::bare_rows_per_second(function, &messages, rows)?;
        println!("{function}: bare decode+encode loop {:.2} M rows/s", rate / 1e6);
        return Ok(());
    }
    if let [flag, addr, function, rows, repeat] = args.as_slice()
        && flag == "--drive"
    {
        // Load for a profiler attached to a server: `--drive ADDR SumOfRows 1000000 20`.
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?.connect().await?;
        let rows: usize = rows.parse()?;
        let messages = wire::encode(rows, throughput::BUNDLE, throughput::workload(function)?);
        let started = std::time::Instant::now();
        for _ in 0..repeat.parse::<usize>()? {
            wire::call(&channel, function, messages.clone()).await?;
        }
        let rate = (rows * repeat.parse::<usize>()?) as f64 / started.elapsed().as_secs_f64();
        println!("{function}: {:.2} M rows/s", rate / 1e6);
        return Ok(());
    }
    if let [flag, addr, seconds] = args.as_slice()
        && flag == "--drive-small"
    {
        // One-row SumOfRows calls from 64 streams, for a profiler attached to a server:
        // `--drive-small ADDR 10`.
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
        let call = throughput::one_row_sum_of_rows(channel);
        for _ in 0..2000 {
            call().await?;
        }
        let window = std::time::Duration::from_secs(seconds.parse()?);
        let (rate, _) = util::calls_per_second(64, window, call).await?;
        println!("{rate:.0} calls/s");
        return Ok(());
    }
    if let [flag, addr, calls] = args.as_slice()
        && flag == "--drive-one-at-a-time"
    {
        // One-row SumOfRows calls one after another, for a profiler attached to a server:
        // `--drive-one-at-a-time ADDR 20000`; prints their p50 and p99.
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
        let call = throughput::one_row_sum_of_rows(channel);
        let mut latencies = util::one_at_a_time(&call, calls.parse()?).await?;
        let (p50, p99) = (util::micros_at(&mut latencies, 0.5), util::micros_at(&mut latencies, 0.99));
        println!("p50 {p50:.0} µs, p99 {p99:.0} µs");
        return Ok(());
    }
    if let [flag, addr, calls, text] = args.as_slice()
        && flag == "--drive-script"
    {
        // One-row ScriptAggr calls one after another, for a profiler attached to a server:
        // `--drive-script ADDR 2000 'sum(args[0])'`; prints their p50 and p99.
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
        let header = scripts::script(text, sse_wasm::pb::FunctionType::Aggregation, 1);
        let row = wire::encode(1, 1, |_| vec![wire::Cell::Number(2.5)]);
        let call = || wire::evaluate(&channel, &header, row.clone());
        let mut latencies = Vec::new();
        for _ in 0..calls.parse::<usize>()? {
            let started = std::time::Instant::now();
            call().await?;
            latencies.push(started.elapsed());
        }
        let (p50, p99) = (util::micros_at(&mut latencies, 0.5), util::micros_at(&mut latencies, 0.99));
        println!("p50 {p50:.0} µs, p99 {p99:.0} µs");
        return Ok(());
    }
    if let [flag, addr, family, rows, calls] = args.as_slice()
        && flag == "--drive-analytics"
    {
        return analytics::drive(addr, family, rows.parse()?, calls.parse()?).await;
    }
    if let [flag, calls, rest @ ..] = args.as_slice()
        && flag == "--in-process"
    {
        // One-row calls straight through `call::function::run`, no gRPC: the cost of a call's
        // store, instance and guest code alone, for profilers. `--in-process 50000` calls
        // SumOfRows; `--in-process 50000 c_example Hypotenuse 3 4` any guest's function.
        let (file, function, row) = match rest {
            [] => ("column_operations", "SumOfRows", vec![1.0, 2.0]),
            [file, function, row @ ..] => {
                (file.as_str(), function.as_str(), row.iter().map(|n| n.parse()).collect::<Result<_, _>>()?)
            }
            _ => anyhow::bail!("--in-process CALLS [GUEST FUNCTION ARGUMENT...]"),
        };
        let engine = sse_wasm::Runtime::new(sse_wasm::wasm::Limits::default())?;
        let (module, _) = sse_wasm::wasm::Guest::load(&engine, None, &util::guest(file))?;
        let registry = sse_wasm::functions::registry::Registry::new(vec![std::sync::Arc::new(module)]);
        let entry =
            registry.get(sse_wasm::functions::registry::function_id(function)).expect("the guest declares it").clone();
        let message = wire::encode(1, 1, |_| row.iter().map(|&n| wire::Cell::Number(n)).collect()).remove(0);
        let calls: u32 = calls.parse()?;
        let started = std::time::Instant::now();
        for _ in 0..calls {
            let mut once = Some(message.clone());
            sse_wasm::functions::call::function::run(
                &engine,
                &entry,
                Default::default(),
                None,
                || Ok(once.take()),
                |_| Ok(()),
            )?;
        }
        println!("{:.1} µs per one-row call", started.elapsed().as_secs_f64() * 1e6 / f64::from(calls));
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let sections: Vec<&str> = args.iter().filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    let wanted = |name: &str| sections.is_empty() || sections.contains(&name);

    println!("sse-wasm benchmark on {} ({} cores)", util::machine(), std::thread::available_parallelism()?);
    if wanted("throughput") {
        throughput::run(quick).await?;
    }
    if sections.contains(&"small") {
        // Also part of `throughput`; alone, it is the quick way to measure small calls.
        throughput::small(quick).await?;
    }
    if wanted("concurrency") {
        throughput::concurrency(quick).await?;
    }
    if wanted("reload") {
        reload::run(quick).await?;
    }
    if wanted("scripts") {
        scripts::run(quick).await?;
    }
    if wanted("datasci") {
        datasci::run(quick).await?;
    }
    if wanted("analytics") {
        analytics::run(quick).await?;
    }
    if wanted("languages") {
        languages::run(quick).await?;
    }
    Ok(())
}
