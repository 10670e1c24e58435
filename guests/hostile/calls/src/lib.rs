//! Hostile functions, loaded only by the host's tests: each tries to hurt the host or escape the
//! sandbox at call time. The host must contain every one and keep serving.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sse_guest::Function;

fn spin(_x: f64) -> f64 {
    let mut i = 0u64;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

fn memory_bomb(_x: f64) -> f64 {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(black_box(vec![1u8; 1 << 20]));
    }
}

#[allow(unconditional_recursion)] // The point: it never stops.
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1)) + 1)
}

fn stack_overflow(x: f64) -> f64 {
    recurse(x as u64) as f64
}

/// 5 MiB of text per row: more than any message Qlik accepts.
fn huge_output(_x: f64) -> String {
    "x".repeat(5 << 20)
}

fn read_file(path: String) -> String {
    match std::fs::read(&path) {
        Ok(bytes) => format!("read {} bytes", bytes.len()),
        Err(error) => format!("denied: {error}"),
    }
}

fn list_root() -> String {
    match std::fs::read_dir("/") {
        Ok(entries) => format!("listed {} entries", entries.count()),
        Err(error) => format!("denied: {error}"),
    }
}

fn connect(address: String) -> String {
    match std::net::TcpStream::connect(address.as_str()) {
        Ok(_) => "connected".to_owned(),
        Err(error) => format!("denied: {error}"),
    }
}

fn environment() -> String {
    let dir = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    format!("{} variables, {} arguments, cwd {dir:?}", std::env::vars().count(), std::env::args().count())
}

fn chatty(x: f64) -> f64 {
    for i in 0..10_000 {
        println!("stdout line {i} {}", "blah ".repeat(20));
        eprintln!("stderr line {i}");
    }
    x
}

/// Seconds since the epoch: clocks are allowed.
fn clock() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(-1.0, |d| d.as_secs_f64())
}

/// Keeps the CPU busy for `ms` milliseconds, then answers `ms`.
fn busy_ms(ms: f64) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(ms / 1000.0);
    while Instant::now() < until {
        black_box(());
    }
    ms
}

/// Sleeps in steps of 10 ms for `seconds`, using no CPU: stopped by the wall-clock backstop.
fn nap(seconds: f64) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    seconds
}

/// Spends `iterations` rounds of pure computation (about 1 ns each), whatever the wall clock does.
fn work(iterations: f64) -> f64 {
    let mut x = 0u64;
    for i in 0..iterations as u64 {
        x = black_box(x.wrapping_mul(31).wrapping_add(i));
    }
    black_box(x);
    iterations
}

/// How many values this instance has been given, counting this one: a guest that tries to carry
/// what one call saw into the next. Within a call it counts up; a fresh instance starts at 1.
fn remember(_x: f64) -> f64 {
    static SEEN: AtomicU64 = AtomicU64::new(0);
    (SEEN.fetch_add(1, Ordering::Relaxed) + 1) as f64
}

sse_guest::export_functions![
    Function::scalar("Nap", nap),
    Function::scalar("Work", work),
    Function::scalar("Spin", spin),
    Function::scalar("MemoryBomb", memory_bomb),
    Function::scalar("StackOverflow", stack_overflow),
    Function::scalar("HugeOutput", huge_output),
    Function::scalar("ReadFile", read_file),
    Function::scalar("ListRoot", list_root),
    Function::scalar("Connect", connect),
    Function::scalar("Environment", environment),
    Function::scalar("Chatty", chatty),
    Function::scalar("Clock", clock),
    Function::scalar("BusyMs", busy_ms),
    Function::scalar("Remember", remember),
];
