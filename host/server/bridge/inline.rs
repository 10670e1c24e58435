//! Small calls inline: a request that arrived whole and small runs on the async runtime's thread
//! that took it in; one that outgrows that (CPU, wall time, a WASI call that waits) runs again
//! on a call thread. And the one way a request that arrived whole runs, inline or not.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::error::CallError;
use crate::functions::call::CallStats;
use crate::wasm::CallControl;
use crate::wire::codec::EncodedRows;

use super::call_log::CallLog;
use super::job::{Headers, HeadersKnown, Next, Sink, merged, run_job};

/// A request at most this large, arrived whole, may run inline: on the async runtime's thread
/// that took it in, without waking a call thread and waiting for it (two thread wake-ups, most of
/// a small call's time).
const INLINE_REQUEST_BYTES: usize = 64 << 10;

/// A function whose inline call outgrew its thread runs this many calls on call threads before
/// it is tried inline again (a busy moment can slow any call once).
pub(super) const THREADED_AFTER_OUTGROWING: u32 = 64;

/// True when a call over `messages` may run inline: small, of a function that has not outgrown
/// it lately (counting down `outgrew`).
pub(super) fn may_run_inline(outgrew: &AtomicU32, messages: &[Bytes]) -> bool {
    let recently = outgrew.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok();
    !recently && messages.iter().map(Bytes::len).sum::<usize>() <= INLINE_REQUEST_BYTES
}

/// Runs `job` as an inline call. WASI's blocking functions (a guest writing to stderr,
/// sleeping) wait through the async runtime, which cannot wait inside its own threads: tokio
/// refuses with a panic. Such a call, like one that panics for any other reason, needs a call
/// thread: it becomes [`CallError::OutgrewInline`], and the panic is not reported (on its call
/// thread, a real failure is).
fn run_inline<R>(job: impl FnOnce() -> Result<R, CallError>) -> Result<R, CallError> {
    crate::wasm::unreported(job).unwrap_or(Err(CallError::OutgrewInline))
}

/// Runs `job` over a request that has arrived whole, collecting its answers and headers; logs
/// and counts the call. `None` when an inline call outgrew its thread: nothing was logged,
/// counted or answered, and it may run again.
pub(super) fn run_whole<J>(
    call: &CallLog,
    job: &J,
    control: CallControl,
    messages: &[Bytes],
    mut metadata: MetadataMap,
    known: HeadersKnown,
) -> Option<(Vec<Result<EncodedRows, Status>>, MetadataMap)>
where
    J: Fn(CallControl, Next<'_>, Headers<'_>, Sink<'_>) -> Result<CallStats, CallError>,
{
    let mut answers = Vec::new();
    let mut messages = messages.iter().cloned();
    let mut next = || Ok(messages.next());
    let mut headers = |more: MetadataMap| {
        if known == HeadersKnown::AtFirstMessage {
            metadata = merged(std::mem::take(&mut metadata), more);
        }
    };
    let mut send = |message| {
        answers.push(Ok(message));
        Ok(())
    };
    let result = if control.inline {
        run_inline(|| job(control, &mut next, &mut headers, &mut send))
    } else {
        run_job(&call.function, || job(control, &mut next, &mut headers, &mut send))
    };
    if matches!(result, Err(CallError::OutgrewInline)) {
        return None;
    }
    if let Err(error) = call.finish(result) {
        answers.push(Err(error));
    }
    Some((answers, metadata))
}
