//! Throughput: rows/s end to end for four workloads, latency of one-row calls, calls/s under 64
//! concurrent streams, and the host's peak memory during a 10 M-row aggregation — each against
//! the servers being compared, every server in its own process, all driven by the same client.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tonic::transport::Channel;

use crate::util::guest;
use crate::wire::{self, Cell};

/// Rows per request message, as the engine sends them.
pub const BUNDLE: usize = 2000;

/// A server under test, in its own process.
pub struct Server {
    pub name: &'static str,
    process: tokio::process::Child,
    pub channel: Channel,
    /// The compile cache and its key, new for each server so every start is a cold one.
    _cache: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `program args... --port PORT` and waits until it answers.
    async fn start(name: &'static str, program: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let process = tokio::process::Command::new(program)
            .args(args)
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let started = Instant::now();
        let channel = loop {
            let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}"))?.tcp_nodelay(true);
            if let Ok(channel) = endpoint.connect().await {
                break channel;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "{name} never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        Ok(Self { name, process, channel, _cache: None })
    }

    /// The sse-wasm binary serving the example and test guests.
    pub async fn wasm(functions: &Path) -> anyhow::Result<Self> {
        Self::wasm_with(functions, &[]).await
    }

    /// The sse-wasm binary serving the guests in `functions`, with more flags.
    pub async fn wasm_with(functions: &Path, flags: &[&str]) -> anyhow::Result<Self> {
        let program = Path::new(env!("CARGO_BIN_EXE_sse-wasm"));
        let dir = functions.to_str().expect("utf-8 path");
        let cache = tempfile::tempdir()?;
        let (cache_dir, key) = (cache.path().join("cache"), cache.path().join("cache.key"));
        let (cache_dir, key) = (cache_dir.to_str().expect("utf-8 path"), key.to_str().expect("utf-8 path"));
        let mut args = vec!["--functions-dir", dir, "--no-watch", "--cache-dir", cache_dir, "--cache-key", key];
        args.extend_from_slice(flags);
        args.push("--listen");
        let mut server = Self::start("sse-wasm (Wasm)", program, &args).await?;
        server._cache = Some(cache);
        // Loading the folder (compiling a script engine takes seconds) must not overlap what is
        // measured next: GetCapabilities answers once it is loaded.
        let mut client = sse_wasm::pb::connector_client::ConnectorClient::new(server.channel.clone());
        let started = Instant::now();
        while client.get_capabilities(sse_wasm::pb::Empty {}).await.is_err() {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(300), "the Wasm host never loaded its folder");
        }
        Ok(server)
    }

    /// This benchmark binary, serving in-process `mode`.
    pub async fn this(name: &'static str, mode: &str) -> anyhow::Result<Self> {
        Self::start(name, &std::env::current_exe()?, &["--serve", mode]).await
    }

    fn status(&self, field: &str) -> u64 {
        let pid = self.process.id().unwrap_or(0);
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// CPU time the server has used so far, user and system, in seconds (Linux reports it in
    /// hundredths of a second, whatever the kernel's tick).
    pub fn cpu_seconds(&self) -> f64 {
        let pid = self.process.id().unwrap_or(0);
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                // The fields after the command name, which is in parentheses and may hold spaces.
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
                Some((ticks(11)? + ticks(12)?) / 100.0)
            })
            .unwrap_or(0.0)
    }

    /// Resident memory now and at peak, in MiB.
    pub fn rss_mib(&self) -> (f64, f64) {
        (self.status("VmRSS:") as f64 / 1024.0, self.status("VmHWM:") as f64 / 1024.0)
    }
}

struct Workload {
    function: &'static str,
    label: &'static str,
    row: fn(usize) -> Vec<Cell>,
    aggregation: bool,
    check: fn(&wire::Answer, usize) -> bool,
}

const TEXT: &str = "twenty-byte-string!!";

fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            function: "SumOfRows",
            label: "SumOfRows (2 numeric → 1)",
            row: |i| vec![Cell::Number(i as f64), Cell::Number(1.0)],
            aggregation: false,
            check: |a, _| a.first.as_ref().is_some_and(|r| r.duals[0].num_data == 1.0),
        },
        Workload {
            function: "SumOfColumn",
            label: "SumOfColumn (aggregation)",
            row: |i| vec![Cell::Number(i as f64)],
            aggregation: true,
            check: |a, n| a.first.as_ref().is_some_and(|r| r.duals[0].num_data == (n as f64) * (n as f64 - 1.0) / 2.0),
        },
        Workload {
            function: "HelloWorld",
            label: "HelloWorld (20-byte strings)",
            row: |_| vec![Cell::Text(TEXT)],
            aggregation: false,
            check: |a, _| a.first.as_ref().is_some_and(|r| r.duals[0].str_data == TEXT),
        },
        Workload {
            function: "DualTwice",
            label: "DualTwice (dual → dual)",
            row: |i| vec![Cell::Dual(i as f64, "dual")],
            aggregation: false,
            check: |a, _| {
                a.first.as_ref().is_some_and(|r| r.duals[0].num_data == 0.0 && r.duals[0].str_data == "dualdual")
            },
        },
    ]
}

/// The request rows of the workload calling `function`.
pub fn workload(function: &str) -> anyhow::Result<fn(usize) -> Vec<Cell>> {
    workloads()
        .into_iter()
        .find(|w| w.function == function)
        .map(|w| w.row)
        .ok_or_else(|| anyhow::anyhow!("no {function}"))
}

/// Rows per second for one call of `rows` rows (the best of `repeat` calls).
async fn rows_per_second(
    server: &Server,
    workload: &Workload,
    messages: &[bytes::Bytes],
    rows: usize,
    repeat: usize,
) -> anyhow::Result<f64> {
    let mut best = Duration::MAX;
    for _ in 0..repeat {
        let started = Instant::now();
        let answer = wire::call(&server.channel, workload.function, messages.to_vec()).await?;
        let took = started.elapsed();
        let expected = if workload.aggregation { 1 } else { rows };
        anyhow::ensure!(
            answer.rows == expected,
            "{}: {} answered {} rows, not {expected}",
            server.name,
            workload.function,
            answer.rows
        );
        anyhow::ensure!((workload.check)(&answer, rows), "{}: {} answered wrongly", server.name, workload.function);
        best = best.min(took);
    }
    Ok(rows as f64 / best.as_secs_f64())
}

fn millions(rate: f64) -> String {
    format!("{:.2} M", rate / 1e6)
}

/// The functions folders the Wasm host serves: the example and test guests with the Python
/// engine, and without it (for memory figures, where its prepared instances would count).
fn folders() -> anyhow::Result<(tempfile::TempDir, tempfile::TempDir)> {
    let (functions, without_scripts) = (tempfile::tempdir()?, tempfile::tempdir()?);
    for name in ["hello_world", "column_operations", "test_functions"] {
        std::fs::copy(guest(name), without_scripts.path().join(format!("{name}.wasm")))?;
        std::fs::copy(guest(name), functions.path().join(format!("{name}.wasm")))?;
    }
    std::fs::copy(guest("python_scripts"), functions.path().join("python_scripts.wasm"))?;
    Ok((functions, without_scripts))
}

/// The three servers compared, each in its own process: plain tonic, sse-wasm with native
/// functions, sse-wasm serving `functions`.
async fn servers(functions: &Path) -> anyhow::Result<Vec<Server>> {
    Ok(vec![
        Server::this("plain tonic + prost", "plain").await?,
        Server::this("sse-wasm, native functions", "native").await?,
        Server::wasm(functions).await?,
    ])
}

pub async fn run(quick: bool) -> anyhow::Result<()> {
    let (functions, without_scripts) = folders()?;
    let servers = servers(functions.path()).await?;
    let sizes: &[usize] = if quick { &[200_000, 1_000_000] } else { &[1_000_000, 10_000_000] };

    println!();
    println!("## Throughput (rows/s end to end, {BUNDLE} rows per request message)");
    print!("| workload | rows |");
    servers.iter().for_each(|s| print!(" {} |", s.name));
    println!(" Wasm / native | Wasm / plain | bare decode+encode loop | Wasm / bare |");
    println!("|---|---|{}---|---|---|---|", "---|".repeat(servers.len()));
    for workload in workloads() {
        for &rows in sizes {
            let messages = wire::encode(rows, BUNDLE, workload.row);
            // Rounds interleave the servers, so a slow moment of the machine hits all of them;
            // each keeps its best round.
            let rounds = if rows >= 5_000_000 { 3 } else { 5 };
            let mut rates = vec![0.0f64; servers.len()];
            for _ in 0..rounds {
                for (rate, server) in rates.iter_mut().zip(&servers) {
                    *rate = rate.max(rows_per_second(server, &workload, &messages, rows, 1).await?);
                }
            }
            let bare = crate::native::bare_rows_per_second(workload.function, &messages, rows)?;
            print!("| {} | {} |", workload.label, rows);
            rates.iter().for_each(|r| print!(" {} |", millions(*r)));
            println!(
                " {:.0}% | {:.1}× | {} | {:.0}% |",
                100.0 * rates[2] / rates[1],
                rates[2] / rates[0],
                millions(bare),
                100.0 * rates[2] / bare
            );
        }
    }

    println!();
    small_calls_table(&servers, quick).await?;

    println!();
    let rows = if quick { 1_000_000 } else { 10_000_000 };
    println!("## Host memory during a {} M-row aggregation (SumOfColumn)", rows / 1_000_000);
    println!("| server | RSS before | peak RSS |");
    println!("|---|---|---|");
    let workload = &workloads()[1];
    let messages = wire::encode(rows, BUNDLE, workload.row);
    for server in [Server::this("plain tonic + prost", "plain").await?, Server::wasm(without_scripts.path()).await?] {
        rows_per_second(&server, workload, &messages[..1], BUNDLE, 1).await?;
        let (before, _) = server.rss_mib();
        rows_per_second(&server, workload, &messages, rows, 1).await?;
        let (_, peak) = server.rss_mib();
        println!("| {} | {before:.0} MiB | {peak:.0} MiB |", server.name);
    }
    Ok(())
}

/// The small-calls section alone, with servers of its own.
pub async fn small(quick: bool) -> anyhow::Result<()> {
    let (functions, _) = folders()?;
    small_calls_table(&servers(functions.path()).await?, quick).await
}

/// One-row calls on each server: latency one at a time, and calls/s with 64 streams at once, with
/// the server's CPU time per call meanwhile (the client shares the machine's cores, so a server
/// that needs more CPU per call leaves fewer calls/s). The servers take turns, in rounds that each
/// start with another server, so that a slower or faster moment of a shared machine does not fall
/// on one server alone.
async fn small_calls_table(servers: &[Server], quick: bool) -> anyhow::Result<()> {
    println!();
    println!("## Small calls (one row, SumOfRows)");
    println!("| server | p50 latency | p99 latency | calls/s, 64 concurrent streams | server CPU per call |");
    println!("|---|---|---|---|---|");
    let calls: Vec<_> = servers.iter().map(|server| one_row_sum_of_rows(server.channel.clone())).collect();
    let figures = small_calls(&calls, servers, quick).await?;
    for (server, figure) in servers.iter().zip(&figures) {
        println!("| {} | {} |", server.name, figure);
    }
    // The Python engine's one-row ScriptAggr on the same host, for comparison: every evaluation
    // gets a fresh interpreter instance.
    let header = crate::scripts::script("sum(args[0])", sse_wasm::pb::FunctionType::Aggregation, 1);
    let (channel, messages) = (servers[2].channel.clone(), wire::encode(1, 1, |_| vec![Cell::Number(2.5)]));
    let script = move || {
        let (channel, messages, header) = (channel.clone(), messages.clone(), header.clone());
        async move { wire::evaluate(&channel, &header, messages).await.map(drop) }
    };
    let script = small_calls(&[script], &servers[2..3], quick).await?.remove(0);
    println!("| sse-wasm, Python `ScriptAggr('sum(args[0])')` | {script} |");
    let (plain, wasm) = (&figures[0], &figures[2]);
    println!(
        "Wasm / plain: p50 {:.2}, p99 {:.2} (≤ 1 is as fast or faster), calls/s {:.2} (≥ 1 is as many or more), \
         server CPU per call {:.2}",
        wasm.p50 / plain.p50,
        wasm.p99 / plain.p99,
        wasm.rate / plain.rate,
        wasm.cpu_per_call / plain.cpu_per_call
    );
    Ok(())
}

/// What `small_calls` measures.
struct SmallCalls {
    /// Latency of one call at a time, µs.
    p50: f64,
    p99: f64,
    /// Calls per second with 64 streams.
    rate: f64,
    /// The server's CPU time per call with 64 streams, µs.
    cpu_per_call: f64,
}

impl std::fmt::Display for SmallCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} µs | {:.0} µs | {:.0} | {:.1} µs", self.p50, self.p99, self.rate, self.cpu_per_call)
    }
}

/// A one-row `SumOfRows` call on `channel`, to make again and again.
pub fn one_row_sum_of_rows(
    channel: Channel,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), tonic::Status>> + Clone + Send + Sync + 'static {
    let message = wire::encode(1, 1, |_| vec![Cell::Number(1.0), Cell::Number(2.0)]);
    move || {
        let (channel, message) = (channel.clone(), message.clone());
        Box::pin(async move { wire::call(&channel, "SumOfRows", message).await.map(drop) })
    }
}

/// For each server, its `calls[i]` made one at a time (p50 and p99 latency), then again and again
/// by 64 concurrent streams (calls/s, and the server's CPU time per call meanwhile). The servers
/// take turns: 5 rounds of 400 calls one at a time and 3 rounds of 1 s under load (quick: 2 of 250
/// and 1), after 100 calls each to warm up.
async fn small_calls<F, Fut>(calls: &[F], servers: &[Server], quick: bool) -> anyhow::Result<Vec<SmallCalls>>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let (rounds, per_round, load_rounds) = if quick { (2, 250, 1) } else { (5, 400, 3) };
    // Each round starts with the next server: none is always the first or the last measured.
    let turns = |round: usize| (0..servers.len()).map(move |k| (round + k) % servers.len());
    let mut latencies = vec![Vec::new(); servers.len()];
    for call in calls {
        for _ in 0..100 {
            call().await?;
        }
    }
    for round in 0..rounds {
        for i in turns(round) {
            latencies[i].extend(crate::util::one_at_a_time(&calls[i], per_round).await?);
        }
    }
    // Calls made, seconds taken and server CPU seconds used, under load.
    let mut load = vec![(0.0, 0.0, 0.0); servers.len()];
    for round in 0..load_rounds {
        for i in turns(round) {
            let cpu = servers[i].cpu_seconds();
            let (rate, elapsed) = crate::util::calls_per_second(64, Duration::from_secs(1), calls[i].clone()).await?;
            let (made, seconds, used) = &mut load[i];
            *made += rate * elapsed;
            *seconds += elapsed;
            *used += servers[i].cpu_seconds() - cpu;
        }
    }
    Ok(latencies
        .iter_mut()
        .zip(load)
        .map(|(latencies, (made, seconds, used))| SmallCalls {
            p50: crate::util::micros_at(latencies, 0.5),
            p99: crate::util::micros_at(latencies, 0.99),
            rate: made / seconds,
            cpu_per_call: used / made * 1e6,
        })
        .collect())
}

/// Total rows/s of 1, 2, 4 and 8 large calls at once against the Wasm host: how throughput
/// scales with the cores there are.
pub async fn concurrency(quick: bool) -> anyhow::Result<()> {
    let functions = tempfile::tempdir()?;
    std::fs::copy(guest("column_operations"), functions.path().join("column_operations.wasm"))?;
    let server = Server::wasm(functions.path()).await?;
    println!();
    let rows = if quick { 200_000 } else { 1_000_000 };
    println!(
        "## Concurrent large calls (SumOfRows, {rows} rows each, Wasm; {cores} cores shared with the client)",
        cores = std::thread::available_parallelism()?
    );
    println!("| calls at once | rows/s in all |");
    println!("|---|---|");
    let messages = wire::encode(rows, BUNDLE, workloads()[0].row);
    for streams in [1, 2, 4, 8] {
        let started = Instant::now();
        let calls: Vec<_> = (0..streams)
            .map(|_| {
                let (channel, messages) = (server.channel.clone(), messages.clone());
                tokio::spawn(async move { wire::call(&channel, "SumOfRows", messages).await })
            })
            .collect();
        for call in calls {
            let answer = call.await??;
            anyhow::ensure!(answer.rows == rows, "a concurrent call answered {} rows, not {rows}", answer.rows);
        }
        println!("| {streams} | {} |", millions((streams * rows) as f64 / started.elapsed().as_secs_f64()));
    }

    Ok(())
}
