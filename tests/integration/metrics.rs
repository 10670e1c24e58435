//! Metrics for operators: after known calls, loads and script evaluations, a scrape of `/metrics`
//! over HTTP says exactly what happened.

use sse_wasm::pb;
use sse_wasm::server::serve_metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::util::{TestServer, V, bundles, call, evaluate, guest_wasm, numbers, row};

/// GETs `path` from `addr` with a plain HTTP/1.1 request; the status line and the body.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// The value of the sample named exactly `name` (with its labels) in a scrape.
pub fn sample(scrape: &str, name: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_calls_rows_loads_and_scripts() {
    let dir = tempfile::tempdir().expect("temp dir");
    for guest in ["column_operations", "python_scripts"] {
        std::fs::copy(guest_wasm(guest), dir.path().join(format!("{guest}.wasm"))).expect("copy");
    }
    std::fs::write(dir.path().join("broken.wasm"), b"not a component").expect("write");
    let server = TestServer::start_in(dir, Default::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics_addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_metrics(listener, server.metrics.clone(), std::future::pending()));

    let mut client = server.client().await;
    for _ in 0..2 {
        let answer = call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0, 3.0]), 2)).await.expect("call");
        assert_eq!(answer.numbers(), [6.0]);
    }
    let wrong = call(&mut client, "SumOfRows", bundles(vec![row(&[V::N(1.0)])], 1)).await;
    assert!(matches!(wrong, Err(status) if status.code() == Code::InvalidArgument), "one column for two parameters");
    let script = evaluate(
        &mut client,
        "sum(args[0])",
        pb::FunctionType::Aggregation,
        pb::DataType::Numeric,
        &[("x", pb::DataType::Numeric)],
        bundles(numbers(&[4.0, 5.0]), 1),
    )
    .await
    .expect("a script");
    assert_eq!(script.numbers(), [9.0]);

    let (status, scrape) = get(metrics_addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let value = |name: &str| sample(&scrape, name).unwrap_or_else(|| panic!("no sample {name} in\n{scrape}"));
    assert_eq!(value(r#"sse_wasm_calls_total{function="SumOfColumn",code="OK"}"#), 2.0);
    assert_eq!(value(r#"sse_wasm_calls_total{function="SumOfRows",code="INVALID_ARGUMENT"}"#), 1.0);
    assert_eq!(value(r#"sse_wasm_rows_in_total{function="SumOfColumn"}"#), 6.0);
    assert_eq!(value(r#"sse_wasm_rows_out_total{function="SumOfColumn"}"#), 2.0);
    assert_eq!(value(r#"sse_wasm_call_seconds_count{function="SumOfColumn"}"#), 2.0);
    assert_eq!(value(r#"sse_wasm_script_evaluations_total{engine="python",code="OK"}"#), 1.0);
    assert_eq!(value("sse_wasm_slot_wait_seconds_count"), 4.0, "every call took a slot");
    assert_eq!(value(r#"sse_wasm_module_loads_total{file="column_operations.wasm",outcome="loaded"}"#), 1.0);
    assert_eq!(value(r#"sse_wasm_module_loads_total{file="python_scripts.wasm",outcome="loaded"}"#), 1.0);
    assert_eq!(value(r#"sse_wasm_module_loads_total{file="broken.wasm",outcome="failed"}"#), 1.0);
    // The test process shares one compile cache, so which of the two it had already is not known.
    let compiled = value("sse_wasm_compile_cache_hits_total") + value("sse_wasm_compile_cache_misses_total");
    assert_eq!(compiled, 2.0, "both components were compiled or taken from the cache");
    assert_eq!(value("sse_wasm_functions"), 3.0);
    assert_eq!(value("sse_wasm_call_slots_in_use"), 0.0);
    assert_eq!(value("sse_wasm_log_lines_dropped_total"), 0.0, "a log that keeps up drops nothing");
    assert!(value("sse_wasm_instances_in_use") >= 0.0);
    assert!(!scrape.contains("broken.wasm\",outcome=\"loaded"), "{scrape}");

    let (status, _) = get(metrics_addr, "/other").await;
    assert!(status.contains("404"), "{status}");
}
