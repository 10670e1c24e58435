//! Where the host's log lines go: into a bounded buffer that one thread writes out, so that a
//! slow or stalled destination (a paused terminal, a full pipe, a busy disk) never holds up a
//! call, and a busy host writes many lines per system call instead of one.
//!
//! Every call logs a line. Written straight from the async runtime's threads, each line was a
//! system call on the call's path, and a destination that stopped reading stopped every call.
//! Here a line costs a copy into the buffer; the writer thread, woken by the first line, collects
//! lines for [`FLUSH_INTERVAL`] (less once [`FLUSH_AT`] bytes wait) and writes them all. When the
//! destination falls behind by [`MAX_PENDING`] bytes, further lines are dropped and counted,
//! and the count is written, as a line of its own, once the destination takes lines again.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer before it is written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(20);

/// Buffered bytes that wake the writer before its interval ends.
pub const FLUSH_AT: usize = 64 << 10;

/// Buffered bytes past which lines are dropped: the destination has stopped taking them.
pub const MAX_PENDING: usize = 4 << 20;

/// How long the host waits at exit for the last lines to be written.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// Lines dropped since the host started, because the log's destination did not keep up.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped since the host started because the log's destination did not keep up.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Lines waiting to be written.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Lines dropped since the last write, to report in the next one.
    dropped: u64,
    /// Set when the host exits: write what is left and stop.
    closing: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer early: the buffer passed [`FLUSH_AT`], or the host is exiting.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only bytes behind, which are still lines.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The log's destination as `tracing_subscriber` sees it: every line goes into the buffer.
#[derive(Clone)]
pub struct BufferedLog {
    shared: Arc<Shared>,
}

/// Writes one formatted line (`tracing_subscriber` formats a whole event, then writes it once).
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.lock();
        if pending.bytes.len() + line.len() > MAX_PENDING {
            pending.dropped += 1;
            DROPPED.fetch_add(1, Ordering::Relaxed);
        } else {
            let first = pending.bytes.is_empty();
            pending.bytes.extend_from_slice(line);
            // The first line wakes an idle writer, which then collects lines for an interval;
            // a full buffer cuts the interval short.
            if first || pending.bytes.len() >= FLUSH_AT {
                self.shared.wake.notify_one();
            }
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedLog {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { shared: &self.shared }
    }
}

/// Dropping it writes the last lines, waiting at most [`EXIT_WAIT`] for a destination that has
/// stopped.
pub struct LogGuard {
    shared: Arc<Shared>,
    /// Signalled by the writer thread once it has written everything and closed the destination.
    done: std::sync::mpsc::Receiver<()>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        let _ = self.done.recv_timeout(EXIT_WAIT);
    }
}

/// A buffered log whose lines a thread writes to `destination`.
pub fn buffered(destination: impl Write + Send + 'static) -> std::io::Result<(BufferedLog, LogGuard)> {
    let shared = Arc::new(Shared::default());
    let (finished, done) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("sse-wasm-log".into()).spawn({
        let shared = shared.clone();
        move || {
            // Returning drops (and so closes) the destination before the guard hears of it.
            write_out(&shared, destination);
            let _ = finished.send(());
        }
    })?;
    Ok((BufferedLog { shared: shared.clone() }, LogGuard { shared, done }))
}

/// The writer thread: once a line waits, collects lines for an interval (less when the buffer
/// fills), then writes them all; an idle log costs no wake-ups.
fn write_out(shared: &Shared, mut destination: impl Write) {
    let mut out = Vec::new();
    loop {
        let (dropped, closing) = {
            let mut pending = shared.lock();
            while !pending.closing && pending.bytes.is_empty() && pending.dropped == 0 {
                pending = shared.wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
            }
            let deadline = Instant::now() + FLUSH_INTERVAL;
            while !pending.closing && pending.bytes.len() < FLUSH_AT {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                pending = shared.wake.wait_timeout(pending, left).unwrap_or_else(PoisonError::into_inner).0;
            }
            // Swapping keeps both buffers' capacity: no allocation once the log is warm.
            std::mem::swap(&mut out, &mut pending.bytes);
            (std::mem::take(&mut pending.dropped), pending.closing)
        };
        if !out.is_empty() {
            // A destination that fails (a closed pipe) loses these lines; the host keeps going.
            let _ = destination.write_all(&out);
            out.clear();
        }
        if dropped > 0 {
            let _ =
                writeln!(destination, "sse-wasm: {dropped} log line(s) dropped: the log's destination did not keep up");
        }
        let _ = destination.flush();
        if closing {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination that takes nothing until released, then records what it is given.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.open;
            let _open = opened.wait_while(open.lock().unwrap(), |open| !*open).unwrap();
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Gate {
        fn release(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn a_stalled_destination_drops_lines_counts_them_and_never_blocks_the_writer() {
        let gate = Gate::default();
        let (log, guard) = buffered(gate.clone()).unwrap();
        let line = format!("{}\n", "x".repeat(1023));
        let lines = 2 * MAX_PENDING / line.len();
        let before = dropped_lines();
        for _ in 0..lines {
            // Returns at once although nothing is being written.
            log.make_writer().write_all(line.as_bytes()).unwrap();
        }
        let dropped = dropped_lines() - before;
        assert!(dropped > 0 && dropped < lines as u64, "{dropped} of {lines} dropped");
        gate.release();
        drop(guard);
        let text = gate.text();
        let kept = text.lines().filter(|l| l.starts_with('x')).count() as u64;
        assert_eq!(kept + dropped, lines as u64, "every line is either written or counted");
        // Each write reports the lines dropped since the one before, after its own lines. A writer
        // that took its first lines late, once the buffer had filled, reports those drops before
        // the lines that the emptied buffer took afterwards: not always last, but all counted.
        let suffix = " log line(s) dropped: the log's destination did not keep up";
        let reported: u64 =
            text.lines().filter_map(|l| l.strip_prefix("sse-wasm: ")?.strip_suffix(suffix)?.parse::<u64>().ok()).sum();
        assert_eq!(reported, dropped, "the dropped lines are reported: {}", &text[text.len().saturating_sub(200)..]);
    }

    #[test]
    fn lines_are_written_in_order_and_all_of_them_at_exit() {
        let gate = Gate::default();
        gate.release();
        let (log, guard) = buffered(gate.clone()).unwrap();
        for i in 0..10_000 {
            writeln!(log.make_writer(), "line {i}").unwrap();
        }
        drop(guard);
        let text = gate.text();
        let expected: Vec<String> = (0..10_000).map(|i| format!("line {i}")).collect();
        assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    }
}
