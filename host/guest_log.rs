//! A guest's stdout and stderr, turned into host log lines: prefixed with the module, cut into
//! lines, bounded per call. The last stderr lines are kept so a crash can be reported with the
//! guest's own last words (a Rust panic prints its message there just before trapping).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much one call may log, in bytes; past it one line says the rest was dropped.
const CALL_LOG_BUDGET: usize = 64 << 10;
/// The longest single line logged; longer lines are cut.
const MAX_LINE: usize = 2048;
/// How much of the stderr tail is kept for error messages.
const LAST_WORDS: usize = 512;

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
}

impl GuestOutput {
    /// A stream named `stream` ("stdout" or "stderr") for a call into `module`.
    pub fn new(module: Arc<str>, stream: &'static str) -> Self {
        Self { module, stream, state: Arc::default() }
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
            if state.last_words.len() + line.len() > LAST_WORDS {
                state.last_words.clear();
            }
            state.last_words.push_str(&line[..line.len().min(LAST_WORDS)]);
            state.last_words.push('\n');
        }
        if state.budget_used + line.len() > CALL_LOG_BUDGET {
            if !state.truncated {
                state.truncated = true;
                tracing::warn!(module = %self.module, stream = self.stream, "guest output past {CALL_LOG_BUDGET} bytes in one call; the rest is dropped");
            }
            return;
        }
        state.budget_used += line.len();
        tracing::info!(module = %self.module, stream = self.stream, "{line}");
    }
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
