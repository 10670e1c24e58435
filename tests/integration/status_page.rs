//! The status page at `/` of the metrics listener, loaded by a real headless browser (Debian's
//! Chromium) from the real binary: it shows the functions served with their files and ids, the
//! file that failed to load and why, calls and errors per function with p50/p99, and the script
//! engines, in plain HTML.
//!
//! Needs `chromium` on the PATH. `.ci/run` installs it and sets `SSE_WASM_REQUIRE_CHROMIUM=1`,
//! which makes its absence a failure; elsewhere the test says it did not run and passes.

use std::process::Command;

use sse_wasm::pb;

use crate::metrics::get;
use crate::util::*;

/// Chromium, if installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Chromium, headless, with `args` then `url`, as this machine allows it (no sandbox as root,
/// no background connections on a closed network, a profile of its own).
fn headless(chromium: &str, profile: &std::path::Path, args: &[&str], url: &str) -> std::process::Output {
    Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// The cells (their text) of the table row whose first cell is `first`.
fn row_cells(dom: &str, first: &str) -> Vec<String> {
    let row = dom
        .split("<tr>")
        .find(|row| row.split("</td>").next().is_some_and(|cell| cell.ends_with(&format!(">{first}"))))
        .unwrap_or_else(|| panic!("no row for {first} in\n{dom}"));
    let row = row.split("</tr>").next().expect("row");
    row.split("</td>").filter_map(|cell| cell.rsplit_once('>').map(|(_, text)| text.to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_what_is_served_what_failed_and_how_calls_went() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("SSE_WASM_REQUIRE_CHROMIUM").is_none(),
            "SSE_WASM_REQUIRE_CHROMIUM is set but chromium is not installed"
        );
        eprintln!("not run: chromium is not installed (.ci/run installs Debian's chromium)");
        return;
    };
    let root = tempfile::tempdir().expect("temp dir");
    let (binary, metrics) = Binary::with_metrics(root.path(), &["column_operations"]).await;
    let mut client = binary.client().await;
    let address = format!("127.0.0.1:{metrics}");
    // A file that cannot load, dropped in while the host serves.
    std::fs::write(binary.functions.join("broken.wasm"), b"\0asm but not really").expect("write");
    let socket: std::net::SocketAddr = address.parse().expect("address");
    eventually("the failure is on the page", || async { get(socket, "/").await.1.contains("broken.wasm") }).await;

    // Three calls that succeed, one that fails (a row with one column of two).
    for _ in 0..3 {
        call(&mut client, "SumOfRows", bundles(vec![row(&[V::N(1.0), V::N(2.0)])], 1)).await.expect("SumOfRows");
    }
    let wrong = vec![pb::BundledRows { rows: vec![row(&[V::N(1.0)])] }];
    assert!(call(&mut client, "SumOfRows", wrong).await.is_err());

    let profile = tempfile::tempdir().expect("temp dir");
    let url = format!("http://{address}/");
    let output = headless(chromium, profile.path(), &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(dom.contains("<h1>sse-wasm "), "{dom}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(dom.contains("3 function(s) served"), "{dom}");

    // Each function with its id, type, parameters and file; SumOfRows with its calls and times.
    let cells = row_cells(&dom, "SumOfRows");
    let id = sse_wasm::functions::registry::function_id("SumOfRows").to_string();
    assert_eq!(
        &cells[1..5],
        [id.as_str(), "tensor", "(col1: NUMERIC, col2: NUMERIC) → NUMERIC", "column_operations.wasm"]
    );
    assert_eq!(&cells[5..7], ["4", "1"], "calls and errors");
    assert!(cells[7].ends_with("µs") || cells[7].ends_with("ms"), "p50: {cells:?}");
    assert!(cells[8].ends_with("µs") || cells[8].ends_with("ms"), "p99: {cells:?}");
    let cells = row_cells(&dom, "MaxOfColumns_2");
    assert_eq!(cells[3], "(col1: NUMERIC, col2: NUMERIC) → table MaxOfColumns");
    assert_eq!(&cells[5..9], ["0", "0", "–", "–"], "no calls yet");

    // The file that failed, and why.
    let cells = row_cells(&dom, "broken.wasm");
    assert!(cells[1].contains("not a loadable WebAssembly component"), "{cells:?}");
    assert!(dom.contains("None: script functions"), "no script engine: {dom}");

    // A picture of it, as the README shows.
    let picture = profile.path().join("status.png");
    let screenshot = format!("--screenshot={}", picture.display());
    let output = headless(chromium, profile.path(), &[&screenshot, "--window-size=1100,700"], &url);
    let png = std::fs::read(&picture).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real picture: {} bytes", png.len());
    // `SSE_WASM_STATUS_SCREENSHOT=deploy/status-page.png` refreshes the README's picture.
    if let Some(keep) = std::env::var_os("SSE_WASM_STATUS_SCREENSHOT") {
        std::fs::write(keep, &png).expect("keep the picture");
    }
}
