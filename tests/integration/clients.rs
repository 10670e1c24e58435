//! Hostile and careless clients: each gets a precise status or a clean cancellation, its resources
//! are freed, and the server keeps serving everyone else.

use std::time::{Duration, Instant};

use prost::Message;
use sse_wasm::functions::registry::function_id;
use sse_wasm::pb;
use sse_wasm::server::ServeOptions;
use sse_wasm::wasm::Limits;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::util::{
    self, Binary, EXECUTE_FUNCTION, TestServer, V, assert_status, bundles, call, eventually, function_header, numbers,
    row,
};

/// Calls `name` with raw message bodies.
async fn call_raw(server: &TestServer, name: &str, messages: Vec<Vec<u8>>) -> Result<Vec<pb::BundledRows>, Status> {
    let header = [(pb::FUNCTION_HEADER, function_header(name))];
    Ok(util::call_raw(server, EXECUTE_FUNCTION, &header, messages).await?.messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_oversized_messages_are_refused() {
    let options = ServeOptions { max_message_bytes: 1 << 20, ..ServeOptions::default() };
    let server = TestServer::start_full(&["column_operations"], Limits::default(), options).await;
    let good = pb::BundledRows { rows: numbers(&[1.0]) }.encode_to_vec();
    assert!(call_raw(&server, "SumOfColumn", vec![good.clone()]).await.is_ok());

    let garbage = vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01];
    assert_status(
        call_raw(&server, "SumOfColumn", vec![good.clone(), garbage]).await,
        Code::InvalidArgument,
        &["SumOfColumn", "not a valid BundledRows"],
    );

    let huge = pb::BundledRows { rows: (0..200_000).map(|i| row(&[V::N(f64::from(i))])).collect() }.encode_to_vec();
    assert!(huge.len() > 1 << 20);
    let result = call_raw(&server, "SumOfColumn", vec![huge]).await;
    let status = result.expect_err("over the limit");
    assert!(matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted), "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    let mut client = server.client().await;
    assert_eq!(
        call(&mut client, "SumOfColumn", bundles(numbers(&[2.0]), 1)).await.expect("still serving").numbers(),
        [2.0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_streams_all_complete() {
    let server = TestServer::start(&["column_operations"]).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.client().await);
    }
    let calls: Vec<_> = (0..10_000)
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            tokio::spawn(async move {
                let x = i as f64;
                let answer = call(&mut client, "SumOfRows", bundles(vec![row(&[V::N(x), V::N(1.0)])], 1)).await;
                (x, answer)
            })
        })
        .collect();
    for task in calls {
        let (x, answer) = task.await.expect("join");
        assert_eq!(answer.expect("call").numbers(), [x + 1.0]);
    }
    assert_eq!(server.slots.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_limit_wait_their_turn() {
    let options = ServeOptions { max_concurrent_calls: 2, ..ServeOptions::default() };
    let server = TestServer::start_full(&["hostile_calls"], Limits::default(), options).await;
    let client = server.client().await;
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { call(&mut client, "BusyMs", bundles(numbers(&[150.0]), 1)).await })
        })
        .collect();
    let mut peak = 0;
    while calls.iter().any(|c| !c.is_finished()) {
        peak = peak.max(server.slots.in_flight());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for task in calls {
        assert_eq!(task.await.expect("join").expect("waited, then ran").numbers(), [150.0]);
    }
    assert_eq!(peak, 2, "never more than the limit, and the limit was used");
}

/// A `Spin` request: one bundle, then the end of the stream — at once, or when `until` fires
/// (a request still streaming while the guest runs).
fn spin_request(
    until: Option<tokio::sync::oneshot::Receiver<()>>,
) -> tonic::Request<futures::stream::BoxStream<'static, pb::BundledRows>> {
    use futures::StreamExt;
    let first = futures::stream::iter(bundles(numbers(&[1.0]), 1));
    let stream = match until {
        None => first.boxed(),
        Some(until) => first.chain(futures::stream::once(until).filter_map(|_| async { None })).boxed(),
    };
    let mut request = tonic::Request::new(stream);
    let header = pb::FunctionRequestHeader { function_id: function_id("Spin"), version: String::new() };
    request.metadata_mut().insert_bin(pb::FUNCTION_HEADER, MetadataValue::from_bytes(&header.encode_to_vec()));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cancels_frees_its_call() {
    let limits = Limits { call_timeout: Duration::from_secs(120), ..Limits::default() };
    let server = TestServer::start_with(&["hostile_calls"], limits).await;
    let client = server.client().await;
    let started = Instant::now();

    // A whole request is answered when the call ends: the client cancels by dropping the request.
    // Whole means its end arrived with its message; when the end comes a moment later (a busy
    // machine), the call streams and its answer stream comes at once: dropped, freed too, and
    // tried again.
    let mut whole = client.clone();
    let mut streamed = 0;
    loop {
        tokio::select! {
            result = whole.execute_function(spin_request(None)) => {
                drop(result.expect("the call starts"));
                streamed += 1;
                assert!(streamed < 20, "the request never arrived whole");
            }
            () = eventually("the call runs", || async { server.slots.in_flight() == 1 }) => break,
        }
        eventually("the dropped streaming call is freed", || async { server.slots.in_flight() == 0 }).await;
    }
    // Leaving the select dropped the request: what Qlik does when a user changes a selection.
    eventually("the cancelled whole call is freed", || async { server.slots.in_flight() == 0 }).await;

    // A request still streaming gets its answer stream at once: the client drops that.
    let (end_request, until) = tokio::sync::oneshot::channel();
    let response = client.clone().execute_function(spin_request(Some(until))).await.expect("call starts");
    eventually("the call runs", || async { server.slots.in_flight() == 1 }).await;
    drop(response);
    // With its request body over too, the client has nothing left of the call: it resets it.
    let _ = end_request.send(());
    eventually("the cancelled call is freed", || async { server.slots.in_flight() == 0 }).await;

    assert!(started.elapsed() < Duration::from_secs(60), "freed long before the 120 s deadline");
    let mut client = server.client().await;
    assert_eq!(call(&mut client, "BusyMs", bundles(numbers(&[1.0]), 1)).await.expect("still serving").numbers(), [1.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_or_sending_are_dropped() {
    let options = ServeOptions { stall_timeout: Duration::from_millis(500), ..ServeOptions::default() };
    let server = TestServer::start_full(&["hello_world"], Limits::default(), options).await;
    let mut client = server.client().await;
    let header = pb::FunctionRequestHeader { function_id: function_id("HelloWorld"), version: String::new() };

    // Sends 20 MB to echo and never reads the answer.
    let text: &'static str = Box::leak("y".repeat(1000).into_boxed_str());
    let mut request =
        tonic::Request::new(futures::stream::iter(bundles((0..20_000).map(|_| row(&[V::S(text)])).collect(), 1000)));
    request.metadata_mut().insert_bin(pb::FUNCTION_HEADER, MetadataValue::from_bytes(&header.encode_to_vec()));
    let unread = client.execute_function(request).await.expect("call starts");
    eventually("the non-reading client's call is dropped", || async { server.slots.in_flight() == 0 }).await;

    // Opens a call and never sends or ends it.
    let mut request = tonic::Request::new(futures::stream::pending::<pb::BundledRows>());
    request.metadata_mut().insert_bin(pb::FUNCTION_HEADER, MetadataValue::from_bytes(&header.encode_to_vec()));
    let status = match client.execute_function(request).await {
        Ok(silent) => silent.into_inner().message().await.expect_err("dropped"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("neither sent nor read"), "{status:?}");
    eventually("the silent client's call is freed", || async { server.slots.in_flight() == 0 }).await;
    drop(unread);

    let mut client = server.client().await;
    assert_eq!(
        call(&mut client, "HelloWorld", bundles(vec![row(&[V::S("ok")])], 1)).await.expect("serving").strings(),
        ["ok"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_calls_finish_within_the_grace_period() {
    let options = ServeOptions { shutdown_grace: Duration::from_secs(2), ..ServeOptions::default() };
    let limits = Limits { call_timeout: Duration::from_secs(120), ..Limits::default() };
    let mut server = TestServer::start_full(&["hostile_calls"], limits, options).await;
    let mut client = server.client().await;
    let running = tokio::spawn(async move { call(&mut client, "BusyMs", bundles(numbers(&[400.0]), 1)).await });
    eventually("the call runs", || async { server.slots.in_flight() == 1 }).await;
    server.begin_shutdown();
    assert_eq!(running.await.expect("join").expect("finished during shutdown").numbers(), [400.0]);

    // A call that would outlive the grace period does not hold the exit up.
    let mut server = TestServer::start_full(
        &["hostile_calls"],
        limits,
        ServeOptions { shutdown_grace: Duration::from_millis(300), ..ServeOptions::default() },
    )
    .await;
    let mut client = server.client().await;
    let _spinning = tokio::spawn(async move { call(&mut client, "Spin", bundles(numbers(&[1.0]), 1)).await });
    eventually("the call runs", || async { server.slots.in_flight() == 1 }).await;
    let started = Instant::now();
    server.begin_shutdown();
    server.stop().await.expect("clean exit");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_service_reports_serving() {
    let server = TestServer::start(&["column_operations"]).await;
    let channel =
        Channel::from_shared(format!("http://{}", server.addr)).expect("uri").connect().await.expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "qlik.sse.Connector"] {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(answer.status(), tonic_health::pb::health_check_response::ServingStatus::Serving, "{service:?}");
    }
}

/// On shutdown the host drains: for the drain delay, health says NOT_SERVING for "" and the
/// connector while calls (on new connections too) still succeed; open Watch streams are told
/// NOT_SERVING and then end, so they do not hold the stopping host up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_with_health_not_serving_before_it_stops_accepting() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;

    let drain = Duration::from_secs(3);
    let options = ServeOptions { drain_delay: drain, ..ServeOptions::default() };
    let mut server = TestServer::start_full(&["column_operations"], Limits::default(), options).await;
    let channel =
        Channel::from_shared(format!("http://{}", server.addr)).expect("uri").connect().await.expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut watches = Vec::new();
    for service in ["", "qlik.sse.Connector"] {
        let mut watch = health.watch(HealthCheckRequest { service: service.into() }).await.expect("watch").into_inner();
        let first = watch.message().await.expect("a status").expect("not ended");
        assert_eq!(first.status(), ServingStatus::Serving, "{service:?}");
        watches.push(watch);
    }

    let started = Instant::now();
    server.begin_shutdown();
    let check = |service: &'static str| {
        let mut health = health.clone();
        async move { health.check(HealthCheckRequest { service: service.into() }).await.map(|r| r.into_inner().status()) }
    };
    eventually("health says NOT_SERVING", || async {
        matches!(check("").await, Ok(ServingStatus::NotServing))
            && matches!(check("qlik.sse.Connector").await, Ok(ServingStatus::NotServing))
    })
    .await;
    // Still accepting: a new connection's call succeeds.
    let mut client = server.client().await;
    let answer =
        call(&mut client, "SumOfColumn", bundles(numbers(&[1.0, 2.0]), 1)).await.expect("served while draining");
    assert_eq!(answer.numbers(), [3.0]);
    assert!(started.elapsed() < drain, "the call above ran within the drain delay ({:?})", started.elapsed());

    for mut watch in watches {
        let told = watch.message().await.expect("a status").expect("not ended yet");
        assert_eq!(told.status(), ServingStatus::NotServing);
        let end = tokio::time::timeout(drain * 3, watch.message()).await.expect("the watch ends after the delay");
        assert!(matches!(end, Ok(None) | Err(_)), "the watch stream ends: {end:?}");
    }
    assert!(started.elapsed() >= drain, "watches end only once the delay is over");
    server.stop().await.expect("clean exit");
}

/// Streams that are open but have sent nothing hold no call slot: hundreds of idle streams (a
/// slow or hostile client) must not keep real calls waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_do_not_take_call_slots() {
    let options = ServeOptions { max_concurrent_calls: 2, ..ServeOptions::default() };
    let server = TestServer::start_full(&["column_operations"], Limits::default(), options).await;
    let client = server.client().await;
    let header = pb::FunctionRequestHeader { function_id: function_id("SumOfColumn"), version: String::new() };
    // Opened first, on the same connection, so the server sees them before the real call.
    let idle: Vec<_> = (0..16)
        .map(|_| {
            let mut client = client.clone();
            let mut request = tonic::Request::new(futures::stream::pending::<pb::BundledRows>());
            request.metadata_mut().insert_bin(pb::FUNCTION_HEADER, MetadataValue::from_bytes(&header.encode_to_vec()));
            tokio::spawn(async move { client.execute_function(request).await.map(drop) })
        })
        .collect();
    // Let every idle stream reach the server: a unary call on the same connection after them.
    client.clone().get_capabilities(pb::Empty {}).await.expect("capabilities");
    assert_eq!(server.slots.in_flight(), 0, "idle streams hold no slot");
    let mut caller = client.clone();
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        call(&mut caller, "SumOfColumn", bundles(numbers(&[1.0, 2.0]), 1)),
    )
    .await
    .expect("a real call is not kept waiting by idle streams")
    .expect("answers");
    assert_eq!(answer.numbers(), [3.0]);
    for stream in idle {
        stream.abort();
    }
}

/// A small request runs on the thread that took it in while it stays quick; one that runs long
/// moves to a call thread and runs again there from the start. Either way it answers once, is
/// counted once, and never holds up the other calls (here on a runtime with a single thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn small_calls_that_run_long_answer_once_and_never_hold_up_others() {
    let server = TestServer::start(&["hostile_calls", "column_operations"]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let metrics_addr = listener.local_addr().expect("addr");
    tokio::spawn(sse_wasm::server::serve_metrics(listener, server.metrics.clone(), std::future::pending()));
    let mut client = server.client().await;

    for ms in [50.0, 0.0, 20.0] {
        let answer = call(&mut client, "BusyMs", bundles(numbers(&[ms]), 1)).await.expect("BusyMs answers");
        assert_eq!(answer.numbers(), [ms]);
    }
    let (_, scrape) = crate::metrics::get(metrics_addr, "/metrics").await;
    let counted = crate::metrics::sample(&scrape, r#"sse_wasm_calls_total{function="BusyMs",code="OK"}"#);
    assert_eq!(counted, Some(3.0), "each call counted once, however it ran:\n{scrape}");
    let rows = crate::metrics::sample(&scrape, r#"sse_wasm_rows_in_total{function="BusyMs"}"#);
    assert_eq!(rows, Some(3.0), "{scrape}");

    // A one-row call that never ends: the single runtime thread keeps serving everyone else.
    let mut spinner = client.clone();
    let spinning = tokio::spawn(async move { call(&mut spinner, "Spin", bundles(numbers(&[1.0]), 1)).await });
    eventually("the call runs", || async { server.slots.in_flight() == 1 }).await;
    for i in 0..50 {
        let x = f64::from(i);
        let answer = call(&mut client, "SumOfRows", bundles(vec![row(&[V::N(x), V::N(1.0)])], 1)).await;
        assert_eq!(answer.expect("served beside the spinning call").numbers(), [x + 1.0]);
    }
    assert!(!spinning.is_finished(), "the spinning call still runs");
    spinning.abort();
    eventually("the cancelled call is freed", || async { server.slots.in_flight() == 0 }).await;
}

/// Sets the soft open files limit of process `pid` (its own user may lower and raise it up to
/// the hard limit).
fn limit_open_files(pid: u32, limit: u64) {
    let status = std::process::Command::new("prlimit")
        .args([format!("--pid={pid}"), format!("--nofile={limit}:")])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(status.success(), "prlimit --nofile={limit}:");
}

/// The soft open files limit of process `pid`.
fn open_files_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("the open files line");
    line.split_whitespace().nth(3).and_then(|v| v.parse().ok()).expect("a number")
}

/// A host out of file descriptors cannot accept connections: each failure is counted and logged
/// (not passed over in silence), calls on connections already open go on, and once descriptors
/// are free again new connections are served.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_accepts_are_logged_and_the_host_serves_on() {
    let root = tempfile::tempdir().expect("temp dir");
    let binary = Binary::start(root.path(), &["column_operations"], &["--no-watch"], "warn").await;
    let mut client = binary.client().await;
    let sum = |x: f64| bundles(numbers(&[x]), 1);
    call(&mut client, "SumOfColumn", sum(1.0)).await.expect("a call");
    let pid = binary.child.id().expect("running");
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("fds").count() as u64;
    let limit = open_files_limit(pid);
    limit_open_files(pid, open + 2);

    let address = std::net::SocketAddr::from(([127, 0, 0, 1], binary.port));
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(address).await.expect("the kernel completes the handshake"));
    }
    let log = binary.log();
    eventually("the failed accepts are logged", || {
        let log = log();
        async move { log.iter().any(|l| l.contains("cannot accept connections") && l.contains("open files")) }
    })
    .await;
    assert_eq!(call(&mut client, "SumOfColumn", sum(2.0)).await.expect("an open connection serves").numbers(), [2.0]);

    drop(held);
    limit_open_files(pid, limit);
    let mut fresh = binary.client().await;
    assert_eq!(call(&mut fresh, "SumOfColumn", sum(3.0)).await.expect("a new connection serves").numbers(), [3.0]);
    eventually("the recovery is logged", || {
        let log = log();
        async move { log.iter().any(|l| l.contains("accepting connections again")) }
    })
    .await;
}
