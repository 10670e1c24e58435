//! A guest entry's CPU time, read cheaply (the wall clock until the first epoch tick, the
//! thread's CPU clock after), and running code whose panics are not reported.

use std::cell::Cell;
use std::sync::Once;
use std::time::{Duration, Instant};

use cpu_time::ThreadTime;

/// CPU time used on the calling thread since a start, read cheaply: until the first epoch tick
/// the wall clock stands in for it (an upper bound, as one thread runs the guest), and from then
/// on the thread's CPU clock, which is a system call rather than a read of shared memory. A
/// guest entry that ends within a tick — a small call — never reads the CPU clock; one that
/// lasts is charged its CPU time, plus the time it waited for a core before its first tick.
#[derive(Clone, Copy, Debug)]
pub(super) struct CpuSince {
    /// The wall clock at the start.
    pub(super) wall: Instant,
    /// From the first tick on: the wall time elapsed then, and the thread's CPU clock then.
    from_tick: Option<(Duration, Duration)>,
}

impl CpuSince {
    pub(super) fn start() -> Self {
        Self { wall: Instant::now(), from_tick: None }
    }

    /// At an epoch tick: the time used so far, reading the CPU clock from now on.
    pub(super) fn at_tick(&mut self) -> Duration {
        match self.from_tick {
            Some(_) => self.used(),
            None => {
                let before = self.wall.elapsed();
                self.from_tick = Some((before, thread_cpu()));
                before
            }
        }
    }

    /// The time used so far.
    pub(super) fn used(&self) -> Duration {
        match self.from_tick {
            None => self.wall.elapsed(),
            Some((before, cpu)) => before + thread_cpu().saturating_sub(cpu),
        }
    }
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    ThreadTime::now().as_duration()
}

thread_local! {
    /// True while this thread runs code whose panics are caught and not reported.
    static UNREPORTED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on the async runtime's thread, catching a panic without reporting it. WASI's
/// blocking functions (a guest writing to stderr, sleeping) wait through the async runtime,
/// which refuses, with a panic, to wait inside its own threads: such guest code must move to a
/// call thread, where a real failure is reported.
pub fn unreported<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !UNREPORTED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = UNREPORTED.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    UNREPORTED.set(was);
    result
}
