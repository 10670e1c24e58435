//! Script functions, for each script engine (Python, JavaScript): a one-row ScriptAggr (a chart
//! asking once per dimension value) as latency and calls/s, and ScriptEval over many rows as rows/s.

use std::time::{Duration, Instant};

use sse_wasm::pb;

use crate::throughput::Server;
use crate::util::guest;
use crate::wire::{self, Cell};

pub fn script(text: &str, function_type: pb::FunctionType, params: usize) -> pb::ScriptRequestHeader {
    pb::ScriptRequestHeader {
        script: text.to_owned(),
        function_type: function_type as i32,
        return_type: pb::DataType::Numeric as i32,
        params: (0..params)
            .map(|i| pb::Parameter { data_type: pb::DataType::Numeric as i32, name: format!("p{i}") })
            .collect(),
    }
}

/// One script engine and the scripts that measure it.
struct Engine {
    name: &'static str,
    file: &'static str,
    aggr: &'static str,
    eval: &'static str,
}

const ENGINES: [Engine; 2] = [
    Engine {
        name: "Python",
        file: "python_scripts",
        aggr: "sum(args[0])",
        eval: "[a + b for a, b in zip(args[0], args[1])]",
    },
    Engine {
        name: "JavaScript",
        file: "js_scripts",
        aggr: "args[0].reduce((s, v) => s + v, 0)",
        eval: "args[0].map((a, i) => a + args[1][i])",
    },
];

pub async fn run(quick: bool) -> anyhow::Result<()> {
    for engine in &ENGINES {
        measure(engine, quick).await?;
    }
    Ok(())
}

async fn measure(engine: &Engine, quick: bool) -> anyhow::Result<()> {
    let functions = tempfile::tempdir()?;
    std::fs::copy(guest(engine.file), functions.path().join(format!("{}.wasm", engine.file)))?;
    let started = Instant::now();
    let server = Server::wasm(functions.path()).await?;
    let ready = started.elapsed();

    println!();
    println!(
        "## Script functions ({} engine; start-up with a cold compile cache: {:.1} s)",
        engine.name,
        ready.as_secs_f64()
    );
    println!("| workload | figure |");
    println!("|---|---|");

    let aggr = script(engine.aggr, pb::FunctionType::Aggregation, 1);
    let one_row = wire::encode(1, 1, |_| vec![Cell::Number(2.5)]);
    let answer = wire::evaluate(&server.channel, &aggr, one_row.clone()).await?;
    anyhow::ensure!(answer.first.map(|r| r.duals[0].num_data) == Some(2.5), "ScriptAggr answered wrongly");
    let mut latencies = Vec::new();
    for _ in 0..if quick { 200 } else { 1000 } {
        let started = Instant::now();
        wire::evaluate(&server.channel, &aggr, one_row.clone()).await?;
        latencies.push(started.elapsed());
    }
    println!(
        "| one-row ScriptAggr `{}`, p50 / p99 latency | {:.0} µs / {:.0} µs |",
        engine.aggr,
        crate::util::micros_at(&mut latencies, 0.5),
        crate::util::micros_at(&mut latencies, 0.99)
    );

    let window = Duration::from_secs(if quick { 1 } else { 3 });
    let (channel, messages, header) = (server.channel.clone(), one_row.clone(), aggr.clone());
    let (rate, _) = crate::util::calls_per_second(16, window, move || {
        let (channel, messages, header) = (channel.clone(), messages.clone(), header.clone());
        async move { wire::evaluate(&channel, &header, messages).await.map(drop) }
    })
    .await?;
    println!("| one-row ScriptAggr, 16 concurrent streams | {rate:.0} calls/s |");

    let rows = if quick { 200_000 } else { 1_000_000 };
    let eval = script(engine.eval, pb::FunctionType::Tensor, 2);
    let messages = wire::encode(rows, 2000, |i| vec![Cell::Number(i as f64), Cell::Number(0.5)]);
    let started = Instant::now();
    let answer = wire::evaluate(&server.channel, &eval, messages).await?;
    let took = started.elapsed();
    anyhow::ensure!(answer.rows == rows, "ScriptEval answered {} rows for {rows}", answer.rows);
    anyhow::ensure!(answer.first.map(|r| r.duals[0].num_data) == Some(0.5), "ScriptEval answered wrongly");
    println!("| ScriptEval `{}`, {rows} rows | {:.2} M rows/s |", engine.eval, rows as f64 / took.as_secs_f64() / 1e6);
    Ok(())
}
