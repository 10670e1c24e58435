//! Hostile guests: whatever a guest does, it fails only its own call, and the host keeps serving.

use std::time::{Duration, Instant};

use sse_wasm::pb;
use sse_wasm::wasm::Limits;
use tonic::Code;

use crate::util::{
    Binary, TestServer, V, append_section, assert_status, bundles, call, eventually, guest_wasm, instances_alive,
    leb128, numbers, row,
};

fn strict() -> Limits {
    Limits { call_timeout: Duration::from_secs(1), max_memory_bytes: 64 << 20, ..Limits::default() }
}

fn text(value: &'static str) -> Vec<pb::BundledRows> {
    bundles(vec![row(&[V::S(value)])], 1)
}

fn no_params() -> Vec<pb::BundledRows> {
    bundles(vec![pb::Row::default()], 1)
}

/// An endless loop (`Spin`), and a tree of calls with no loop anywhere (`CallTree`: nine levels of
/// sixteen calls, minutes of work), which only the checks at function entries can stop: a compiler
/// that dropped those would let it run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_code_ends_at_the_deadline() {
    let server = TestServer::start_with(&["hostile_calls", "column_operations"], strict()).await;
    let mut client = server.client().await;
    for function in ["Spin", "CallTree"] {
        let started = Instant::now();
        let Err(status) = call(&mut client, function, bundles(numbers(&[1.0]), 1)).await else {
            panic!("{function} finished")
        };
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        // Its CPU time limit ends it, or, on a machine so busy that its thread gets under a quarter
        // of a core, the wall-clock backstop (4 times the limit): either is a check in its code.
        let message = status.message();
        assert!(
            message.starts_with(function)
                && (message.contains("CPU time limit of 1 s") || message.contains("the wall-clock limit")),
            "{message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{function} interrupted promptly: {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        call(&mut client, "SumOfColumn", bundles(numbers(&[1.0]), 1)).await.expect("still serving").numbers(),
        [1.0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_cap() {
    let server = TestServer::start_with(&["hostile_calls"], strict()).await;
    let mut client = server.client().await;
    assert_status(
        call(&mut client, "MemoryBomb", bundles(numbers(&[1.0]), 1)).await,
        Code::ResourceExhausted,
        &["MemoryBomb", "memory limit of 64 MiB"],
    );
    assert!(call(&mut client, "Clock", no_params()).await.expect("still serving").numbers()[0] > 1.7e9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_and_oversized_rows_fail_their_call() {
    let server = TestServer::start_with(&["hostile_calls"], strict()).await;
    let mut client = server.client().await;
    assert_status(
        call(&mut client, "StackOverflow", bundles(numbers(&[1.0]), 1)).await,
        Code::Internal,
        // The guest's 64 KiB stack in its memory runs out before the host's stack does.
        &["StackOverflow", "out of bounds memory access (or a stack overflow"],
    );
    assert_status(
        call(&mut client, "HugeOutput", bundles(numbers(&[1.0]), 1)).await,
        Code::ResourceExhausted,
        &["HugeOutput", "4 MiB"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_has_no_files_no_network_no_environment() {
    let server = TestServer::start(&["hostile_calls"]).await;
    let mut client = server.client().await;
    // A real file the host can read.
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    assert!(std::path::Path::new(manifest).is_file());
    let path: &'static str = Box::leak(manifest.to_owned().into_boxed_str());
    for target in [path, "/etc/passwd", "Cargo.toml", "../Cargo.toml"] {
        let answer =
            call(&mut client, "ReadFile", text(Box::leak(target.to_owned().into_boxed_str()))).await.expect("ReadFile");
        assert!(answer.strings()[0].starts_with("denied"), "{target}: {}", answer.strings()[0]);
    }
    assert!(call(&mut client, "ListRoot", no_params()).await.expect("ListRoot").strings()[0].starts_with("denied"));

    // A listener on loopback that the guest tries to reach.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let address: &'static str = Box::leak(listener.local_addr().expect("addr").to_string().into_boxed_str());
    let answer = call(&mut client, "Connect", text(address)).await.expect("Connect");
    assert!(answer.strings()[0].starts_with("denied"), "{}", answer.strings()[0]);
    assert!(listener.accept().is_err(), "no connection arrived");

    let answer = call(&mut client, "Environment", no_params()).await.expect("Environment");
    assert!(answer.strings()[0].starts_with("0 variables, 0 arguments"), "{}", answer.strings()[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatty_guests_are_bounded_and_clocks_work() {
    let server = TestServer::start(&["hostile_calls"]).await;
    let mut client = server.client().await;
    assert_eq!(call(&mut client, "Chatty", bundles(numbers(&[7.0]), 1)).await.expect("Chatty").numbers(), [7.0]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let guest_now = call(&mut client, "Clock", no_params()).await.expect("Clock").numbers()[0];
    assert!((guest_now - now).abs() < 60.0, "guest clock {guest_now} vs host {now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_does_not_touch_concurrent_calls_to_the_same_function() {
    let server = TestServer::start(&["test_functions"]).await;
    let calls = (0..16).map(|i| {
        let addr = server.addr;
        tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect");
            let mut client = pb::connector_client::ConnectorClient::new(channel);
            let value = if i % 2 == 0 { 13.0 } else { f64::from(100 + i) };
            (i, call(&mut client, "PanicsOn13", bundles(numbers(&[value; 100]), 10)).await)
        })
    });
    for task in calls {
        let (i, result) = task.await.expect("join");
        if i % 2 == 0 {
            assert_status(result, Code::Internal, &["PanicsOn13", "13 is unlucky"]);
        } else {
            assert_eq!(result.expect("unaffected").numbers(), vec![f64::from(100 + i); 100]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_modules_are_refused_at_load_and_the_rest_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    for guest in [
        "hostile_describe_trap",
        "hostile_describe_spin",
        "hostile_many_functions",
        "hostile_bad_names",
        "column_operations",
    ] {
        std::fs::copy(guest_wasm(guest), dir.path().join(format!("{guest}.wasm"))).expect("copy");
    }
    let started = Instant::now();
    let server = TestServer::start_in(dir, strict()).await;
    assert!(started.elapsed() < Duration::from_secs(20), "a spinning describe is cut off");
    assert_eq!(server.status.borrow().failures, 4);
    let caps = server.client().await.get_capabilities(pb::Empty {}).await.expect("capabilities").into_inner();
    let mut names: Vec<_> = caps.functions.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["MaxOfColumns_2", "SumOfColumn", "SumOfRows"]);
}

/// `--call-timeout` is CPU time: calls that wait for a core longer than the limit (by the wall
/// clock) still finish, while a loop still ends at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_timeout_counts_cpu_time_not_waiting_for_a_core() {
    let limit = Duration::from_secs(2);
    let server = TestServer::start_with(&["hostile_calls"], Limits { call_timeout: limit, ..Limits::default() }).await;
    let client = server.client().await;
    let timed = |iterations: f64| {
        let mut client = client.clone();
        async move {
            let started = Instant::now();
            let answer = call(&mut client, "Work", bundles(numbers(&[iterations]), 1)).await;
            assert_eq!(answer.expect("within its CPU time").numbers(), [iterations]);
            started.elapsed()
        }
    };
    // Work of about a tenth of the limit on this machine, alone (the fastest of three tries).
    let mut iterations = 1e7;
    for _ in 0..3 {
        let mut took = Duration::MAX;
        for _ in 0..3 {
            took = took.min(timed(iterations).await);
        }
        iterations = (iterations * limit.as_secs_f64() / 10.0 / took.as_secs_f64().max(1e-3)).round();
    }
    // Enough at once that each waits for a core for about twice the limit in all.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let calls: Vec<_> = (0..20 * cores).map(|_| tokio::spawn(timed(iterations))).collect();
    let mut slowest = Duration::ZERO;
    for task in calls {
        slowest = slowest.max(task.await.expect("join"));
    }
    assert!(slowest > limit, "some call took longer than the limit by the wall clock ({slowest:?}), and none failed");
    assert_status(
        call(&mut client.clone(), "Spin", bundles(numbers(&[1.0]), 1)).await,
        Code::DeadlineExceeded,
        &["Spin", "CPU time limit of 2 s"],
    );
}

/// A guest that sleeps uses no CPU: the wall-clock backstop (4 times the limit) stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_only_sleeps_is_stopped_by_the_wall_clock_backstop() {
    let limits = Limits { call_timeout: Duration::from_millis(500), ..Limits::default() };
    let server = TestServer::start_with(&["hostile_calls"], limits).await;
    let mut client = server.client().await;
    let started = Instant::now();
    assert_status(
        call(&mut client, "Nap", bundles(numbers(&[3600.0]), 1)).await,
        Code::DeadlineExceeded,
        &["Nap", "2 s in the guest"],
    );
    assert!(started.elapsed() < Duration::from_secs(20), "stopped promptly: {:?}", started.elapsed());
    assert_eq!(
        call(&mut client, "Nap", bundles(numbers(&[0.05]), 1)).await.expect("short naps are fine").numbers(),
        [0.05]
    );
}

/// When every instance slot is taken, a call is RESOURCE_EXHAUSTED with a message saying so,
/// never "crashed", and the host serves again once slots free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_pool_is_resource_exhausted_not_a_crash() {
    let limits = Limits { call_timeout: Duration::from_secs(3), instances: 1, ..Limits::default() };
    let server = TestServer::start_with(&["hostile_calls"], limits).await;
    let client = server.client().await;
    let spin = |mut client: pb::connector_client::ConnectorClient<tonic::transport::Channel>| {
        tokio::spawn(async move { call(&mut client, "Spin", bundles(numbers(&[1.0]), 1)).await })
    };
    let mut spinning = spin(client.clone());
    // Whichever call takes the only instance first holds it: while Spin does, Clock is refused;
    // if Clock was first, Spin is refused, and starts again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match call(&mut client.clone(), "Clock", no_params()).await {
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(status.message().contains("Clock") && status.message().contains("instance"), "{status:?}");
                break;
            }
            Err(status) => panic!("a full pool is not {status:?}"),
            Ok(_) if spinning.is_finished() => {
                assert_status(spinning.await.expect("join"), Code::ResourceExhausted, &["Spin", "instance"]);
                spinning = spin(client.clone());
            }
            Ok(_) => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "a call holds the only instance and another is refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_status(spinning.await.expect("join"), Code::DeadlineExceeded, &["Spin"]);
    assert!(call(&mut client.clone(), "Clock", no_params()).await.expect("serves again").numbers()[0] > 1.7e9);
}

/// The real host makes the next small call's instance while it is idle (and resets the last
/// call's slot there too). Such an instance is as fresh as one made during the call: a guest
/// that counts the values it is given starts from 1 in every call — one at a time, between calls
/// of another of its functions, and many at once — and counts up only within a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_made_ahead_is_as_fresh_as_any() {
    let root = tempfile::tempdir().expect("temp dir");
    let (binary, metrics) = Binary::with_metrics(root.path(), &["hostile_calls"]).await;
    let mut client = binary.client().await;
    let remember = |values: &[f64]| bundles(numbers(values), values.len());

    for i in 0..200 {
        let answer = call(&mut client, "Remember", remember(&[f64::from(i)])).await.expect("Remember");
        assert_eq!(answer.numbers(), [1.0], "call {i} saw what an earlier call left");
        if i % 20 == 0 {
            let answer = call(&mut client, "Remember", remember(&[7.0, 8.0, 9.0])).await.expect("three rows");
            assert_eq!(answer.numbers(), [1.0, 2.0, 3.0], "one instance for the whole call");
            call(&mut client, "Clock", no_params()).await.expect("another function of the component");
        }
    }
    // The host at rest holds an instance made ahead: the calls above could take one.
    eventually("an instance made ahead while idle", || async { instances_alive(metrics).await >= 1.0 }).await;

    let streams: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let answer = call(&mut client, "Remember", remember(&[1.0])).await.expect("Remember");
                    assert_eq!(answer.numbers(), [1.0], "a call saw what another left");
                }
            })
        })
        .collect();
    for stream in streams {
        stream.await.expect("no stream failed");
    }
}

/// `component` with one more core instance appended: a module that holds only a memory of
/// `pages` pages of 64 KiB. Appended last, it shifts no index the component already uses.
fn with_extra_memory(mut component: Vec<u8>, pages: usize) -> Vec<u8> {
    fn read_leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0, 0);
        loop {
            let byte = bytes[*at];
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }
    // The component's own core modules (section 1 at the top level) come first in its index space.
    let (mut at, mut modules) = (8, 0);
    while at < component.len() {
        let id = component[at];
        at += 1;
        let size = read_leb(&component, &mut at);
        modules += usize::from(id == 1);
        at += size;
    }
    // (module (memory <pages>))
    let mut memory = vec![1, 0];
    leb128(pages, &mut memory);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    append_section(&mut module, 5, &memory);
    append_section(&mut component, 1, &module);
    // (core instance (instantiate <module>))
    let mut instance = vec![1, 0];
    leb128(modules, &mut instance);
    instance.push(0);
    append_section(&mut component, 2, &instance);
    component
}

/// The sample of a histogram's bucket `le` in a scrape.
fn bucket(scrape: &str, name: &str, le: &str) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"{le}\"}} ");
    scrape.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok()).unwrap_or_else(|| panic!("{prefix} in {scrape}"))
}

/// Guest stores whose peak memory the metrics served on `port` counted as over 32 MiB.
async fn stores_over_32_mib(port: u16) -> f64 {
    let (_, scrape) = crate::metrics::get(std::net::SocketAddr::from(([127, 0, 0, 1], port)), "/metrics").await;
    let name = "sse_wasm_guest_memory_bytes";
    bucket(&scrape, name, "+Inf") - bucket(&scrape, name, "33554432.0")
}

/// `--max-memory` caps an instance's memories together, not each one: a component with a second
/// memory of 24 MiB under a cap of 48 MiB may grow its own by 16 MiB but not by 30 (each alone
/// would fit), and the peak the metrics count is the sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_cap_covers_all_memories_of_an_instance() {
    let root = tempfile::tempdir().expect("temp dir");
    let metrics = crate::util::free_port().await;
    let address = format!("127.0.0.1:{metrics}");
    let args = ["--metrics-listen", address.as_str(), "--max-memory", "48"];
    let binary = Binary::start(root.path(), &[], &args, "warn").await;
    let bytes = with_extra_memory(crate::util::guest_bytes("hostile_calls"), 24 * 16);
    std::fs::write(binary.functions.join("several_memories.wasm"), bytes).expect("write");
    let mut client = binary.client().await;
    eventually("the component with two memories serves", || {
        let mut client = client.clone();
        async move { call(&mut client, "Grow", bundles(numbers(&[0.0]), 1)).await.is_ok() }
    })
    .await;
    assert_eq!(stores_over_32_mib(metrics).await, 0.0, "no store has held more than 32 MiB yet");

    let grown = call(&mut client, "Grow", bundles(numbers(&[30.0]), 1)).await.expect("Grow 30");
    assert_eq!(grown.numbers(), [0.0], "30 MiB more would make 56 MiB in all, past the cap of 48");
    let grown = call(&mut client, "Grow", bundles(numbers(&[16.0]), 1)).await.expect("Grow 16");
    assert_eq!(grown.numbers(), [1.0], "16 MiB more makes about 42 MiB in all");
    eventually(
        "the peak of both memories together is counted",
        || async move { stores_over_32_mib(metrics).await >= 1.0 },
    )
    .await;
}

/// Guest output in any script, cut anywhere, cannot take the host down: a function whose panic
/// message the host cuts inside a character fails its own call with that message; a component
/// that panics so in `describe` at start-up is refused alone, named in the log with why, and
/// every other file of the folder serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cut_inside_a_character_fails_only_its_own_call_or_file() {
    let root = tempfile::tempdir().expect("temp dir");
    let guests = ["hostile_describe_trap", "column_operations", "hostile_calls"];
    let binary = Binary::start(root.path(), &guests, &[], "info").await;
    let mut client = binary.client().await;
    let caps = client.get_capabilities(pb::Empty {}).await.expect("capabilities").into_inner();
    let names: Vec<_> = caps.functions.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"SumOfRows") && names.contains(&"Babble"), "the other files serve: {names:?}");

    let result = call(&mut client, "Babble", bundles(numbers(&[1.0]), 1)).await;
    assert_status(result, Code::Internal, &["Babble", "guest panicked", "babble: éé"]);
    assert_eq!(call(&mut client, "Clock", no_params()).await.expect("serves on").numbers().len(), 1);
    let log = binary.log();
    eventually("the refused file is named with its reason", || {
        let log = log();
        async move {
            log.iter().any(|l| l.contains("hostile_describe_trap.wasm") && l.contains("describe explodes: éé"))
        }
    })
    .await;
}

/// Every numeric flag is range-checked, from the command line and from its variable alike: the
/// host exits with a message naming the flag, never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_flags_are_refused_by_name() {
    let root = tempfile::tempdir().expect("temp dir");
    // The arguments, or a variable and its value, and the flag the message must name.
    type Case = (&'static [&'static str], Option<(&'static str, &'static str)>, &'static str);
    let cases: [Case; 6] = [
        (&["--call-timeout", "1e300"], None, "--call-timeout"),
        (&[], Some(("SSE_WASM_CALL_TIMEOUT", "1e300")), "--call-timeout"),
        (&["--stall-timeout", "inf"], None, "--stall-timeout"),
        (&[], Some(("SSE_WASM_MAX_MEMORY", "18446744073709551615")), "--max-memory"),
        (&["--max-input", "0"], None, "--max-input"),
        (&["--drain-delay", "1e19"], None, "--drain-delay"),
    ];
    for (args, variable, flag) in cases {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sse-wasm"));
        command.current_dir(root.path()).args(["--listen", "127.0.0.1:0", "--no-watch"]).args(args);
        if let Some((name, value)) = variable {
            command.env(name, value);
        }
        let output = command.output().await.expect("sse-wasm runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?} {variable:?}: {stderr}");
        assert!(stderr.contains(flag) && !stderr.contains("panicked"), "{args:?} {variable:?}: {stderr}");
    }
}
