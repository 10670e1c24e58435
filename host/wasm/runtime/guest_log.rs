//! A guest's stdout and stderr, turned into host log lines: prefixed with the module, cut into
//! lines, bounded per call and, across all calls, in rate. The last stderr lines are kept so a crash can be reported with the
//! guest's own last words (a Rust panic prints its message there just before trapping).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much one call may log, in bytes; past it one line says the rest was dropped.
const CALL_LOG_BUDGET: usize = 64 << 10;
/// The longest single line logged; longer lines are cut.
const MAX_LINE: usize = 2048;
/// How much of the stderr tail is kept for error messages: the last lines that fit.
const LAST_WORDS: usize = 2048;
/// How much of one stderr line is kept there.
const LAST_LINE: usize = 512;

/// Guest output the whole host logs per second, in bytes, after a burst of `LOG_BURST`.
const LOG_RATE: f64 = 256.0 * 1024.0;
/// The burst allowance of the host-wide log rate.
const LOG_BURST: f64 = 1024.0 * 1024.0;

/// A token bucket shared by every guest stream of a host, so that no guest, however often it
/// is called, can flood the log. What it refuses is counted and reported at most once a second.
#[derive(Debug)]
pub struct LogRate {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    reported: Instant,
}

impl Default for LogRate {
    fn default() -> Self {
        let now = Instant::now();
        Self { state: Mutex::new(Bucket { tokens: LOG_BURST, refilled: now, dropped: 0, reported: now }) }
    }
}

impl LogRate {
    /// Takes `bytes` from the bucket; false when the rate is exceeded.
    fn admit(&self, bytes: usize) -> bool {
        let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.refilled).as_secs_f64() * LOG_RATE;
        bucket.tokens = (bucket.tokens + refill).min(LOG_BURST);
        bucket.refilled = now;
        if bucket.tokens >= bytes as f64 {
            bucket.tokens -= bytes as f64;
            return true;
        }
        bucket.dropped += 1;
        if now.duration_since(bucket.reported) >= Duration::from_secs(1) {
            tracing::warn!("guest output over {} KiB/s: {} line(s) dropped", LOG_RATE as u64 / 1024, bucket.dropped);
            bucket.dropped = 0;
            bucket.reported = now;
        }
        false
    }
}

#[derive(Default)]
struct State {
    partial: Vec<u8>,
    budget_used: usize,
    truncated: bool,
    last_words: String,
}

/// One guest stream (stdout or stderr) of one call.
#[derive(Clone)]
pub struct GuestOutput {
    module: Arc<str>,
    stream: &'static str,
    state: Arc<Mutex<State>>,
    rate: Arc<LogRate>,
}

impl GuestOutput {
    /// A stream named `stream` ("stdout" or "stderr") for a call into `module`, sharing the
    /// host-wide `rate`.
    pub fn new(module: Arc<str>, stream: &'static str, rate: Arc<LogRate>) -> Self {
        Self { module, stream, state: Arc::default(), rate }
    }

    /// The last line(s) the guest wrote, e.g. its panic message; empty when it wrote nothing.
    pub fn last_words(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut words = state.last_words.trim().to_owned();
        if words.is_empty() {
            words = String::from_utf8_lossy(&state.partial).trim().to_owned();
        }
        words
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.partial.extend_from_slice(bytes);
        while let Some(end) = state.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = state.partial.drain(..=end).collect();
            self.emit(&mut state, &line[..end]);
        }
        if state.partial.len() > MAX_LINE {
            let line = std::mem::take(&mut state.partial);
            self.emit(&mut state, &line);
        }
    }

    fn emit(&self, state: &mut State, line: &[u8]) {
        let line = String::from_utf8_lossy(&line[..line.len().min(MAX_LINE)]);
        if self.stream == "stderr" {
            keep_last_words(&mut state.last_words, &line);
        }
        if state.budget_used + line.len() > CALL_LOG_BUDGET {
            if !state.truncated {
                state.truncated = true;
                tracing::warn!(module = %self.module, stream = self.stream, "guest output past {CALL_LOG_BUDGET} bytes in one call; the rest is dropped");
            }
            return;
        }
        state.budget_used += line.len();
        if !self.rate.admit(line.len()) {
            return;
        }
        tracing::info!(module = %self.module, stream = self.stream, "{line}");
    }
}

/// Adds `line` to the kept tail `words`: the last lines that fit in `LAST_WORDS` bytes, at
/// most `LAST_LINE` bytes of each, cut where a character ends (guest output is any text).
fn keep_last_words(words: &mut String, line: &str) {
    let line = &line[..line.floor_char_boundary(LAST_LINE)];
    while words.len() + line.len() + 1 > LAST_WORDS {
        let first = words.find('\n').map_or(words.len(), |end| end + 1);
        words.drain(..first);
    }
    words.push_str(line);
    words.push('\n');
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn output(stream: &'static str) -> GuestOutput {
        GuestOutput::new("guest.wasm".into(), stream, Arc::default())
    }

    /// A line whose byte `LAST_LINE` falls inside a character (any non-English traceback).
    #[test]
    fn a_line_cut_inside_a_character_keeps_the_words_before_it() {
        let stderr = output("stderr");
        let line = format!("x{}", "é".repeat(400));
        stderr.write_bytes(format!("{line}\n").as_bytes());
        let words = stderr.last_words();
        assert!(line.starts_with(&words) && words.len() == LAST_LINE - 1, "{} bytes kept", words.len());
        // The lines after it (Rust's note on backtraces) do not push it out.
        stderr.write_bytes(b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
        assert!(stderr.last_words().starts_with(&words), "{}", stderr.last_words());
    }

    proptest! {
        /// Whatever bytes a guest writes, in whatever pieces, the host neither panics nor keeps
        /// more than its bounds, and the last words are the start of the last line written.
        #[test]
        fn any_output_is_taken_in_bounds(
            pieces in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..700),
                    "[a-zé€😀\\n]{0,900}".prop_map(String::into_bytes),
                    (0usize..3000).prop_map(|n| "é".repeat(n).into_bytes()),
                ],
                1..12,
            ),
        ) {
            for stream in ["stderr", "stdout"] {
                let out = output(stream);
                for piece in &pieces {
                    out.write_bytes(piece);
                }
                let state = out.state.lock().expect("lock");
                prop_assert!(state.partial.len() <= MAX_LINE);
                prop_assert!(state.last_words.len() <= LAST_WORDS);
                prop_assert!(state.last_words.lines().all(|l| l.len() <= LAST_LINE));
                prop_assert!(state.budget_used <= CALL_LOG_BUDGET);
                drop(state);
                let words = out.last_words();
                prop_assert!(words.len() <= MAX_LINE * 3);
            }
        }
    }

    #[test]
    fn the_log_rate_admits_a_burst_then_refuses() {
        let rate = LogRate::default();
        let line = 1024;
        let admitted = (0..2048).take_while(|_| rate.admit(line)).count();
        // The burst (1 MiB) plus what trickled in meanwhile, and no more.
        assert!((1024..1100).contains(&admitted), "{admitted} lines admitted");
        assert!(!rate.admit(line));
    }
}
