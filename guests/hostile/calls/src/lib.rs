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

/// A leaf of [`call_tree`]: straight-line code, no loop, no call.
#[inline(never)]
fn leaf(x: u64) -> u64 {
    black_box(x).wrapping_mul(0x5851_f42d_4c95_7f2d).wrapping_add(1)
}

/// A level of [`call_tree`]: sixteen calls of the level below, written out (no loop).
macro_rules! level {
    ($name:ident, $below:ident) => {
        #[inline(never)]
        fn $name(x: u64) -> u64 {
            let x = $below($below($below($below(x))));
            let x = $below($below($below($below(x))));
            let x = $below($below($below($below(x))));
            $below($below($below($below(x))))
        }
    };
}
level!(level1, leaf);
level!(level2, level1);
level!(level3, level2);
level!(level4, level3);
level!(level5, level4);
level!(level6, level5);
level!(level7, level6);
level!(level8, level7);
level!(level9, level8);

/// Runs for minutes without a single loop: nine levels of sixteen calls, 16⁹ ≈ 6.9·10¹⁰ leaves.
fn call_tree(x: f64) -> f64 {
    level9(x as u64) as f64
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

/// Panics with a line in a script other than English, longer than the host keeps of it: its
/// 512th byte falls inside a character.
fn babble(_x: f64) -> f64 {
    panic!("babble: {}", "é".repeat(400))
}

/// What [`dirty`] writes at the start of every 4 KiB page it fills, and [`count_marks`] looks for.
const MARK: u64 = 0x5EC2_E7D1_A7A0_F00D;

const WASM_PAGE: usize = 64 << 10;

/// Grows linear memory 0 by `pages` pages of 64 KiB: its former size in pages, or `usize::MAX`
/// when refused (always, built for anything but WebAssembly, which has no linear memory).
fn memory_grow(pages: usize) -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_grow(0, pages);
    #[cfg(not(target_arch = "wasm32"))]
    return {
        let _ = pages;
        usize::MAX
    };
}

/// Grows linear memory by `mib` MiB, writes [`MARK`] into every 4 KiB page of what it grew, and
/// keeps running until the call's deadline: memory a later call must never see.
fn dirty(mib: f64) -> f64 {
    let pages = (mib as usize) << 20 >> 16;
    let start = memory_grow(pages);
    if start == usize::MAX {
        return -1.0;
    }
    for page in (start * WASM_PAGE..(start + pages) * WASM_PAGE).step_by(4096) {
        // SAFETY: the pages were just grown and belong to no Rust object.
        unsafe { core::ptr::write_volatile(page as *mut u64, MARK) };
    }
    eprintln!("dirtied {mib} MiB");
    spin(mib)
}

/// Grows linear memory by `mib` MiB, as [`dirty`] did in an earlier call, and counts the 4 KiB
/// pages of what it grew that hold [`MARK`]. A fresh instance's new pages are zero: 0.
fn count_marks(mib: f64) -> f64 {
    let pages = (mib as usize) << 20 >> 16;
    let start = memory_grow(pages);
    if start == usize::MAX {
        return -1.0;
    }
    let seen = (start * WASM_PAGE..(start + pages) * WASM_PAGE)
        .step_by(4096)
        // SAFETY: as in `dirty`: grown pages, no Rust object.
        .filter(|&page| unsafe { core::ptr::read_volatile(page as *const u64) } == MARK)
        .count();
    seen as f64
}

/// Grows linear memory by `mib` MiB and asks the model store to keep all of it: a model far over
/// `--model-max`, which the host must refuse by its length, without copying it first.
fn save_grown(mib: f64) -> Result<f64, String> {
    let pages = (mib as usize) << 20 >> 16;
    let start = memory_grow(pages);
    if start == usize::MAX {
        return Err("no memory".into());
    }
    // SAFETY: the grown pages are valid, zeroed memory that no Rust object uses.
    let grown = unsafe { core::slice::from_raw_parts((start * WASM_PAGE) as *const u8, pages * WASM_PAGE) };
    sse_guest::models::save("grown", grown)?;
    Ok(1.0)
}

/// Grows linear memory by `mib` MiB: 1 when the host allowed it, 0 when it refused.
fn grow(mib: f64) -> f64 {
    let pages = (mib as usize) << 20 >> 16;
    if memory_grow(pages) == usize::MAX { 0.0 } else { 1.0 }
}

sse_guest::export_functions![
    Function::scalar("Nap", nap),
    Function::scalar("Work", work),
    Function::scalar("Spin", spin),
    Function::scalar("CallTree", call_tree),
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
    Function::scalar("Babble", babble),
    Function::scalar("Dirty", dirty),
    Function::scalar("CountMarks", count_marks),
    Function::scalar("Grow", grow),
    Function::scalar("SaveGrown", save_grown),
];
