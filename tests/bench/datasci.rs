//! The data-science engine (`#!pandas`): a one-row numpy aggregation (a fresh instance per
//! evaluation), a 100,000-row pandas groupby with numpy percentiles, a vectorized ScriptEval over
//! a million rows, and memory: each evaluation's linear memory, and the host's RSS with 16
//! evaluations at once.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::TryFutureExt;
use sse_wasm::pb;

use crate::throughput::Server;
use crate::wire::{self, Cell};

fn script(text: &str, function_type: pb::FunctionType, params: &[(&str, pb::DataType)]) -> pb::ScriptRequestHeader {
    pb::ScriptRequestHeader {
        script: text.to_owned(),
        function_type: function_type as i32,
        return_type: pb::DataType::Numeric as i32,
        params: params
            .iter()
            .map(|(name, t)| pb::Parameter { data_type: *t as i32, name: (*name).to_owned() })
            .collect(),
    }
}

const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

const GROUPBY: &str = "means = q.groupby('Region')['Sales'].transform('mean')\n\
                       p90 = numpy.percentile(q['Sales'], 90)\n\
                       qResult = (q['Sales'] - means) / p90";

const VECTORIZED: &str = "numpy.asarray(args[0]) * 2";

/// `sse_wasm_guest_memory_bytes`'s mean, from a metrics scrape.
async fn mean_guest_memory_mib(metrics: std::net::SocketAddr) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(metrics).await?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    let (sum, count) = (value("sse_wasm_guest_memory_bytes_sum"), value("sse_wasm_guest_memory_bytes_count"));
    match (sum, count) {
        (Some(sum), Some(count)) if count > 0.0 => Ok(sum / count / f64::from(1 << 20)),
        _ => anyhow::bail!("no sse_wasm_guest_memory_bytes in the metrics"),
    }
}

pub async fn run(quick: bool) -> anyhow::Result<()> {
    let engine = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/target/datasci/datasci.wasm");
    anyhow::ensure!(engine.is_file(), "{} is missing: run `make datasci-engine` first", engine.display());
    let functions = tempfile::tempdir()?;
    std::fs::copy(&engine, functions.path().join("datasci.wasm"))?;
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let started = Instant::now();
    let server = Server::wasm_with(functions.path(), &["--metrics-listen", &metrics.to_string()]).await?;
    // The first answer waits for the load (a cold compile).
    let x = [("X", pb::DataType::Numeric)];
    let aggr = script("numpy.sum(args[0])", pb::FunctionType::Aggregation, &x);
    let one_row = wire::encode(1, 1, |_| vec![Cell::Number(2.5)]);
    let answer = loop {
        match wire::evaluate(&server.channel, &aggr, one_row.clone()).await {
            Err(status) if status.code() == tonic::Code::Unavailable => continue,
            other => break other?,
        }
    };
    let ready = started.elapsed();
    anyhow::ensure!(answer.first.map(|r| r.duals[0].num_data) == Some(2.5), "ScriptAggr answered wrongly");

    println!();
    println!("## Data-science scripts (`#!pandas`; start-up with a cold compile cache: {:.1} s)", ready.as_secs_f64());
    println!("| workload | figure | target |");
    println!("|---|---|---|");

    let call = || wire::evaluate(&server.channel, &aggr, one_row.clone()).map_ok(drop);
    let mut latencies = crate::util::one_at_a_time(&call, if quick { 50 } else { 300 }).await?;
    println!(
        "| one-row ScriptAggr `numpy.sum(args[0])`, p50 / p99, fresh instance each | {:.2} ms / {:.2} ms | p50 ≤ 2 ms |",
        crate::util::micros_at(&mut latencies, 0.5) / 1e3,
        crate::util::micros_at(&mut latencies, 0.99) / 1e3
    );
    let window = std::time::Duration::from_secs(if quick { 1 } else { 3 });
    let (channel, header, messages) = (server.channel.clone(), aggr.clone(), one_row.clone());
    let (rate, _) = crate::util::calls_per_second(16, window, move || {
        let (channel, header, messages) = (channel.clone(), header.clone(), messages.clone());
        async move { wire::evaluate(&channel, &header, messages).await.map(drop) }
    })
    .await?;
    println!("| one-row ScriptAggr, 16 concurrent streams | {rate:.0} calls/s | |");

    let rows = 100_000;
    let params = [("Sales", pb::DataType::Numeric), ("Region", pb::DataType::String)];
    let groupby = script(GROUPBY, pb::FunctionType::Tensor, &params);
    let messages =
        wire::encode(rows, 2000, |i| vec![Cell::Number((i % 1000) as f64), Cell::Text(REGIONS[i % REGIONS.len()])]);
    let mut times = Vec::new();
    for _ in 0..if quick { 3 } else { 10 } {
        let started = Instant::now();
        let answer = wire::evaluate(&server.channel, &groupby, messages.clone()).await?;
        times.push(started.elapsed());
        anyhow::ensure!(answer.rows == rows, "the groupby answered {} rows for {rows}", answer.rows);
    }
    println!(
        "| 100,000 rows: `groupby().transform('mean')` + `numpy.percentile`, p50 per call | {:.1} ms | ≤ 60 ms |",
        crate::util::micros_at(&mut times, 0.5) / 1e3
    );

    let rows = if quick { 200_000 } else { 1_000_000 };
    let eval = script(VECTORIZED, pb::FunctionType::Tensor, &x);
    let messages = wire::encode(rows, 2000, |i| vec![Cell::Number(i as f64)]);
    let mut rates = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let answer = wire::evaluate(&server.channel, &eval, messages.clone()).await?;
        rates.push(rows as f64 / started.elapsed().as_secs_f64());
        anyhow::ensure!(answer.rows == rows, "ScriptEval answered {} rows for {rows}", answer.rows);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "| ScriptEval `{VECTORIZED}`, {rows} rows (median of 3) | {:.2} M rows/s | ≥ 1 M rows/s |",
        rates[1] / 1e6
    );

    // Memory: 16 evaluations of the 100,000-row groupby at once.
    let messages =
        wire::encode(100_000, 2000, |i| vec![Cell::Number((i % 1000) as f64), Cell::Text(REGIONS[i % REGIONS.len()])]);
    let (before, _) = server.rss_mib();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (channel, header, messages) = (server.channel.clone(), groupby.clone(), messages.clone());
        tasks.push(tokio::spawn(async move { wire::evaluate(&channel, &header, messages).await }));
    }
    let mut peak = before;
    let mut sampling = tokio::time::interval(Duration::from_millis(5));
    for task in tasks {
        tokio::pin!(task);
        loop {
            tokio::select! {
                done = &mut task => { done??; break; }
                _ = sampling.tick() => peak = peak.max(server.rss_mib().0),
            }
        }
    }
    let linear = mean_guest_memory_mib(metrics).await?;
    println!(
        "| 16 concurrent 100,000-row groupbys: host RSS before → peak; linear memory per evaluation (mean) | {before:.0} → {peak:.0} MiB ({:.0} MiB per evaluation); {linear:.0} MiB | fit the default 512 MiB cap |",
        (peak - before) / 16.0
    );
    Ok(())
}
