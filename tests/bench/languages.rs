//! Per-language cost: a one-row call of each example guest's numeric scalar function (Rust, C,
//! Zig, Go, Python, JavaScript), served together by one host, as p50 / p99 latency, beside each
//! component's size. The host's own path is the same for all; the difference is the guest's
//! instantiation and its language's runtime.

use futures::TryFutureExt;

use crate::throughput::Server;
use crate::util::{guest, micros_at, one_at_a_time};
use crate::wire::{self, Cell};

/// A guest, its language, and a one-row call of one of its functions.
const CALLS: [(&str, &str, &str, &[f64]); 6] = [
    ("column_operations", "Rust", "SumOfRows", &[1.0, 2.0]),
    ("c_example", "C", "Hypotenuse", &[3.0, 4.0]),
    ("zig_example", "Zig", "ToFahrenheit", &[100.0]),
    ("go_example", "Go", "RoundTo", &[2.345, 1.0]),
    ("python_example", "Python", "Multiply", &[6.0, 7.0]),
    ("js_example", "JavaScript", "Clamp", &[15.0, 0.0, 10.0]),
];

pub async fn run(quick: bool) -> anyhow::Result<()> {
    let functions = tempfile::tempdir()?;
    for (file, ..) in CALLS {
        std::fs::copy(guest(file), functions.path().join(format!("{file}.wasm")))?;
    }
    let server = Server::wasm(functions.path()).await?;

    println!();
    println!("## One-row call per guest language (one host serving all six)");
    println!("| language | function | component | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (file, language, function, args) in CALLS {
        let message = wire::encode(1, 1, |_| args.iter().map(|&n| Cell::Number(n)).collect());
        let answer = wire::call(&server.channel, function, message.clone()).await?;
        anyhow::ensure!(answer.rows == 1, "{function} answered {} rows", answer.rows);
        let call = || wire::call(&server.channel, function, message.clone()).map_ok(drop);
        let mut latencies = one_at_a_time(&call, if quick { 200 } else { 1000 }).await?;
        let size = std::fs::metadata(guest(file))?.len() as f64 / 1024.0;
        let size = if size >= 1024.0 { format!("{:.1} MiB", size / 1024.0) } else { format!("{size:.0} KiB") };
        println!(
            "| {language} | `{function}` | {size} | {:.0} µs | {:.0} µs |",
            micros_at(&mut latencies, 0.5),
            micros_at(&mut latencies, 0.99)
        );
    }
    Ok(())
}
