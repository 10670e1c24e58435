//! The analytics library (`guests/analytics/`): one call of each family's function at 1,000 and
//! 100,000 rows through gRPC, beside the same function run natively on the same columns
//! (`analytics_native.py` in the reference Python of `make analytics-reference`), and beside the
//! call's floor: the same columns through a function of `floor.py` that only counts them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sse_wasm::pb;
use tonic::transport::Channel;

use crate::throughput::Server;
use crate::util::{median_max, ms};
use crate::wire;

/// One cell: a number (NaN for null) or a text.
#[derive(Clone)]
enum Value {
    N(f64),
    S(String),
}

/// A family's workload: the file, the function, its options, its columns for `rows` rows, and
/// how many series (columns drawn anew) it is measured on.
struct Workload {
    family: &'static str,
    file: &'static str,
    function: &'static str,
    options: &'static str,
    columns: fn(usize, &mut StdRng) -> Vec<Vec<Value>>,
    series: u64,
}

/// The seed of a workload's columns: the same whichever families a run measures.
fn seed(family: &str, rows: usize, series: u64) -> u64 {
    let fnv = family.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    fnv ^ (rows as u64).rotate_left(32) ^ series
}

fn features(rows: usize, rng: &mut StdRng) -> Vec<Value> {
    (0..rows)
        .map(|i| {
            let centre = (i % 4) as f64 * 5.0;
            Value::S(format!("{};{};{}", centre + rng.r#gen::<f64>(), centre + rng.r#gen::<f64>(), rng.r#gen::<f64>()))
        })
        .collect()
}

const WORKLOADS: [Workload; 6] = [
    Workload {
        family: "correlation",
        file: "correlation.py",
        function: "Correlation",
        options: "method=spearman",
        columns: |rows, rng| {
            let x: Vec<f64> = (0..rows).map(|_| rng.r#gen()).collect();
            let y = x.iter().map(|v| Value::N(v + rng.r#gen::<f64>())).collect();
            vec![x.into_iter().map(Value::N).collect(), y]
        },
        series: 1,
    },
    Workload {
        family: "anomalies",
        file: "anomalies.py",
        function: "Isolation_Forest",
        options: "trees=100",
        columns: |rows, rng| vec![features(rows, rng)],
        series: 1,
    },
    Workload {
        family: "clustering",
        file: "clustering.py",
        function: "Cluster",
        options: "k=4",
        columns: |rows, rng| vec![features(rows, rng)],
        series: 1,
    },
    Workload {
        family: "forecasting",
        file: "forecasting.py",
        function: "Forecast",
        options: "method=ets, frequency=day, seasonal_periods=7",
        columns: |rows, rng| {
            // Days from 1900 on; the last 14 are the ones forecast.
            let dates = (0..rows).map(|i| Value::N(2.0 + i as f64)).collect();
            let values = (0..rows)
                .map(|i| {
                    let t = i as f64;
                    let v = 100.0 + 0.01 * t + 8.0 * (t * std::f64::consts::TAU / 7.0).sin() + rng.r#gen::<f64>();
                    Value::N(if i + 14 >= rows { f64::NAN } else { v })
                })
                .collect();
            vec![dates, values]
        },
        // The optimizer's path, and so the number of times it runs the model, differs between
        // the engine's and the native libraries in the last bits of their arithmetic: by up to
        // half, either way, from one series to the next.
        series: 3,
    },
    Workload {
        family: "prediction",
        file: "prediction.py",
        function: "Predict",
        options: "method=forest, trees=20",
        columns: |rows, rng| {
            let features = features(rows, rng);
            let target = (0..rows)
                .map(|i| Value::N(if i % 10 == 0 { f64::NAN } else { (i % 4) as f64 * 3.0 + rng.r#gen::<f64>() }))
                .collect();
            vec![target, features]
        },
        series: 1,
    },
    Workload {
        family: "association",
        file: "association.py",
        function: "Association_Rules",
        options: "min_support=0.01, min_confidence=0.1",
        columns: |rows, rng| {
            // Baskets of 4 items of 30; a basket with item k often holds item k+1 too.
            let mut transactions = Vec::with_capacity(rows);
            let mut items = Vec::with_capacity(rows);
            let mut first = 0;
            for i in 0..rows {
                let item = match i % 4 {
                    0 => {
                        first = rng.gen_range(0..30);
                        first
                    }
                    1 if rng.r#gen::<f64>() < 0.7 => (first + 1) % 30,
                    _ => rng.gen_range(0..30),
                };
                transactions.push(Value::S(format!("T{}", i / 4)));
                items.push(Value::S(format!("item {item}")));
            }
            vec![transactions, items]
        },
        series: 1,
    },
];

/// The columns as rows of BundledRows of 2,000 rows, the options as the last column.
fn encode(columns: &[Vec<Value>], options: &str) -> Vec<Bytes> {
    let rows = columns[0].len();
    let dual = |v: &Value| match v {
        Value::N(n) => pb::Dual { num_data: *n, str_data: String::new() },
        Value::S(s) => pb::Dual { num_data: 0.0, str_data: s.clone() },
    };
    (0..rows)
        .step_by(2000)
        .map(|start| {
            let message = pb::BundledRows {
                rows: (start..(start + 2000).min(rows))
                    .map(|i| {
                        let mut duals: Vec<pb::Dual> = columns.iter().map(|c| dual(&c[i])).collect();
                        duals.push(pb::Dual { num_data: 0.0, str_data: options.to_owned() });
                        pb::Row { duals }
                    })
                    .collect(),
            };
            Bytes::from(message.encode_to_vec())
        })
        .collect()
}

/// The median seconds of `repeats` native calls of `function` of `file`, on the same columns.
fn native(file: &Path, function: &str, options: &str, columns: &[Vec<Value>], repeats: usize) -> anyhow::Result<f64> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("guests/.tools/reference/bin/python");
    anyhow::ensure!(python.exists(), "{} is missing: run `make analytics-reference` first", python.display());
    let json_value = |v: &Value| match v {
        Value::N(n) if n.is_nan() => "null".to_owned(),
        Value::N(n) => format!("{n:?}"),
        Value::S(s) => format!("{s:?}"),
    };
    let mut json = String::from("[");
    for column in columns {
        json.push('[');
        json.push_str(&column.iter().map(json_value).collect::<Vec<_>>().join(","));
        json.push_str("],");
    }
    let options = vec![format!("{options:?}"); columns[0].len()];
    json.push_str(&format!("[{}]]", options.join(",")));
    let mut child = Command::new(python)
        .arg(root.join("tests/bench/analytics_native.py"))
        .arg(root.join("guests/python/datasci/driver.py"))
        .arg(file)
        .arg(function)
        .arg(repeats.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("stdin").write_all(json.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "native {function}: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

/// How long each of `repeats` calls of `function` through gRPC took.
async fn sandboxed(
    channel: &Channel,
    function: &str,
    messages: &[Bytes],
    repeats: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let answer = wire::call(channel, function, messages.to_vec()).await?;
        times.push(started.elapsed());
        anyhow::ensure!(answer.rows > 0, "{function} answered no rows");
    }
    Ok(times)
}

/// The plain server's function that counts the rows of any columns.
const PLAIN_FLOOR: &str = "CountRows";

/// The function of `floor.py` that takes `workload`'s parameters.
fn floor(workload: &Workload) -> String {
    format!("Floor_{}", workload.function)
}

pub async fn run(quick: bool) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let engine = root.join("guests/target/datasci/datasci.wasm");
    anyhow::ensure!(engine.is_file(), "{} is missing: run `make datasci-engine` first", engine.display());
    let functions = tempfile::tempdir()?;
    std::fs::copy(&engine, functions.path().join("datasci.wasm"))?;
    for workload in &WORKLOADS {
        std::fs::copy(root.join("guests/analytics").join(workload.file), functions.path().join(workload.file))?;
    }
    std::fs::copy(root.join("tests/bench/floor.py"), functions.path().join("floor.py"))?;
    // A 100,000-row forecast takes about 20 s of CPU here, near the default 30 s limit.
    let server = Server::wasm_with(functions.path(), &["--call-timeout", "300"]).await?;
    // The same messages to a plain tonic + prost server that counts their rows: what the
    // protocol itself costs a call, sandbox or not.
    let plain = Server::this("plain tonic + prost", "plain").await?;
    let mut client = sse_wasm::pb::connector_client::ConnectorClient::new(server.channel.clone());
    let started = Instant::now();
    loop {
        let capabilities = client.get_capabilities(pb::Empty {}).await?.into_inner();
        let served = |name: &str| capabilities.functions.iter().any(|f| f.name == name);
        if WORKLOADS.iter().all(|w| served(w.function) && served(&floor(w))) {
            break;
        }
        anyhow::ensure!(started.elapsed().as_secs() < 300, "the library was never served");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    println!();
    println!("## Analytics library (one call, p50; native: the same function outside the sandbox)");
    println!(
        "Floor: the same call to a function of the same parameters that only counts its rows (`tests/bench/floor.py`); \
         plain floor: the same messages to a plain tonic + prost server's function that counts them."
    );
    println!(
        "| family: function (options) | rows | first call | sandboxed | native | ratio | floor | plain floor | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // `BENCH_FAMILIES=forecasting,prediction` measures those alone.
    let families = std::env::var("BENCH_FAMILIES").unwrap_or_default();
    let wanted = |w: &&Workload| families.is_empty() || families.split(',').any(|f| f.trim() == w.family);
    for workload in WORKLOADS.iter().filter(wanted) {
        for rows in [1_000, 100_000] {
            let (mut all_sandboxed, mut all_native) = (0.0, 0.0);
            for series in 0..workload.series {
                let mut rng = StdRng::seed_from_u64(seed(workload.family, rows, series));
                let columns = (workload.columns)(rows, &mut rng);
                let messages = encode(&columns, workload.options);
                let mut times = sandboxed(&server.channel, workload.function, &messages, 1).await?;
                let first = times[0].as_secs_f64();
                // Calls of under a second are timed 10 times (the median of 3 at 100,000 rows
                // moved by a fifth between runs), longer ones 3 times, each of several series once.
                let repeats = match (quick, workload.series, first < 1.0) {
                    (true, _, _) | (_, 2.., false) => 1,
                    (false, _, true) => 10,
                    (false, _, false) => 3,
                };
                times.extend(sandboxed(&server.channel, workload.function, &messages, repeats - 1).await?);
                let mut floors = sandboxed(&server.channel, &floor(workload), &messages, repeats).await?;
                let mut plain_floors = sandboxed(&plain.channel, PLAIN_FLOOR, &messages, repeats).await?;
                let file = root.join("guests/analytics").join(workload.file);
                let native_time = native(&file, workload.function, workload.options, &columns, repeats)?;
                let sandboxed = median_max(&mut times).0.as_secs_f64();
                (all_sandboxed, all_native) = (all_sandboxed + sandboxed, all_native + native_time);
                let label = if workload.series > 1 { format!(", series {}", series + 1) } else { String::new() };
                println!(
                    "| {}: `{}('{}')`{label} | {rows} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}× | {:.1} ms | {:.1} ms | {} |",
                    workload.family,
                    workload.function,
                    workload.options,
                    first * 1e3,
                    sandboxed * 1e3,
                    native_time * 1e3,
                    sandboxed / native_time,
                    median_max(&mut floors).0.as_secs_f64() * 1e3,
                    median_max(&mut plain_floors).0.as_secs_f64() * 1e3,
                    if rows == 100_000 && workload.series == 1 { "≤ 2×" } else { "—" }
                );
            }
            if workload.series > 1 {
                println!(
                    "| {}: the {} series together | {rows} | | {:.1} ms | {:.1} ms | {:.2}× | | | {} |",
                    workload.family,
                    workload.series,
                    all_sandboxed * 1e3,
                    all_native * 1e3,
                    all_sandboxed / all_native,
                    if rows == 100_000 { "≤ 2×" } else { "—" }
                );
            }
        }
    }
    Ok(())
}

/// One family's call at `rows` rows, `calls` times, for a profiler attached to a server that
/// serves the library and `floor.py`: `--drive-analytics ADDR correlation 100000 50` (the floor's
/// function with `correlation/floor`; the plain server's, `--serve plain ADDR`, with
/// `correlation/plain`); prints the p50.
pub async fn drive(addr: &str, family: &str, rows: usize, calls: usize) -> anyhow::Result<()> {
    let (family, suffix) = family.split_once('/').unwrap_or((family, ""));
    let workload =
        WORKLOADS.iter().find(|w| w.family == family).ok_or_else(|| anyhow::anyhow!("no family {family}"))?;
    let function = match suffix {
        "" => workload.function.to_owned(),
        "floor" => floor(workload),
        "plain" => PLAIN_FLOOR.to_owned(),
        other => anyhow::bail!("{family}/{other}: give FAMILY, FAMILY/floor or FAMILY/plain"),
    };
    let channel = Channel::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect().await?;
    let columns = (workload.columns)(rows, &mut StdRng::seed_from_u64(seed(family, rows, 0)));
    let messages = encode(&columns, workload.options);
    let mut times = sandboxed(&channel, &function, &messages, calls).await?;
    println!("{function}: p50 {} over {calls} calls", ms(median_max(&mut times).0));
    Ok(())
}
