//! The bridge between tonic's async streams and a call's blocking thread: call slots
//! (back-pressure), taking in a request that has already arrived whole, the stall timeout,
//! cancellation when the client goes away, panics of the host's own code turned into errors,
//! answer headers a call decides while it runs, and one log line per call.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, Stream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::metadata::MetadataMap;
use tonic::{Response, Status, Streaming};

use crate::error::CallError;
use crate::functions::call::CallStats;
use crate::observe::metrics::{self, CallLabels, FunctionLabels, Metrics, ScriptLabels};
use crate::wasm::{CallControl, CancelFlag};
use crate::wire::codec::{EncodedRows, WireRows};

/// How many answer messages may wait for a slow client before the call thread waits too.
const RESPONSE_QUEUE: usize = 4;

/// A stream of answers, as tonic sends them.
pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<EncodedRows, Status>> + Send>>;

/// Where a call reads its request messages from.
pub(crate) type Next<'a> = &'a mut dyn FnMut() -> Result<Option<Bytes>, CallError>;
/// Where a call sends its answer messages to.
pub(crate) type Sink<'a> = &'a mut dyn FnMut(EncodedRows) -> Result<(), CallError>;
/// Where a call adds answer headers (a script's TableDescription), before its first message.
pub(crate) type Headers<'a> = &'a mut dyn FnMut(MetadataMap);

/// When a call's answer headers are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadersKnown {
    /// Before it runs: they are sent at once, and the call adds none.
    Before,
    /// Only when it sends its first message (or ends): a script decides its TableDescription.
    AtFirstMessage,
}

/// `more` added to `metadata`.
fn merged(metadata: MetadataMap, more: MetadataMap) -> MetadataMap {
    let mut headers = metadata.into_headers();
    headers.extend(more.into_headers());
    MetadataMap::from_headers(headers)
}

/// Headers a call may still add to, until its first message sends them.
struct PendingHeaders {
    metadata: Option<MetadataMap>,
    sender: Option<oneshot::Sender<MetadataMap>>,
}

impl PendingHeaders {
    fn add(&mut self, more: MetadataMap) {
        if let Some(metadata) = self.metadata.take() {
            self.metadata = Some(merged(metadata, more));
        } else {
            tracing::warn!("answer headers added after the first answer message are not sent");
        }
    }

    fn commit(&mut self) {
        if let (Some(metadata), Some(sender)) = (self.metadata.take(), self.sender.take()) {
            // The receiver is gone only when the client is: nobody to send them to.
            let _ = sender.send(metadata);
        }
    }
}

/// The slots for calls running at once. A call takes a slot before it starts and gives it back
/// when it ends however it ends, so calls beyond the limit wait (back-pressure) instead of piling
/// up threads and guest memory.
#[derive(Clone, Debug)]
pub struct CallSlots {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl CallSlots {
    /// `capacity` slots.
    pub fn new(capacity: usize) -> Self {
        Self { semaphore: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.capacity - self.semaphore.available_permits()
    }

    /// Waits for a free slot.
    pub(crate) async fn acquire(&self) -> tokio::sync::OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring cannot fail.
        self.semaphore.clone().acquire_owned().await.expect("call slots are never closed")
    }
}

/// The error for a failed request stream: the client's own fault is INVALID_ARGUMENT, a message
/// over the size limit keeps tonic's code, a reset is a cancellation.
fn stream_error(function: &str, status: &Status) -> CallError {
    let code = match status.code() {
        tonic::Code::Cancelled => return CallError::Cancelled,
        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss => tonic::Code::InvalidArgument,
        code => code,
    };
    CallError::Stream { function: function.to_owned(), code, message: status.message().to_owned() }
}

/// Runs a call's job, turning a panic of the host's own code into an error that names the call:
/// the client must never take a partial answer followed by OK for a whole one.
fn run_job<R>(label: &str, job: impl FnOnce() -> Result<R, CallError>) -> Result<R, CallError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        tracing::error!(call = label, "the call's thread panicked: {what}");
        Err(CallError::Internal(format!("{label}: the host failed while running this call")))
    })
}

/// Request messages taken in before a call starts; past this many it streams.
const PREFETCH_MESSAGES: usize = 8;

fn stalled(stall: Duration) -> CallError {
    CallError::Stalled { seconds: stall.as_secs_f64() }
}

/// Cancels a call when dropped: held by whatever the client's going away drops (the request
/// handler while a whole request runs, the answer stream while a call streams).
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What a call is counted as in the metrics.
#[derive(Clone, Debug)]
pub(crate) enum Counted {
    /// A call of the function with this name.
    Function(String),
    /// An evaluation by the script engine of this language.
    Script(String),
}

/// One log line, and the metrics, per call.
struct CallLog {
    function: String,
    app: String,
    started: Instant,
    counted: Counted,
    metrics: Arc<Metrics>,
}

impl CallLog {
    fn count(&self, result: &Result<CallStats, CallError>) {
        let code = metrics::code_name(match result {
            Ok(_) => tonic::Code::Ok,
            Err(error) => error.to_status().code(),
        });
        match &self.counted {
            Counted::Function(function) => {
                let labels = FunctionLabels { function: function.clone() };
                self.metrics.calls.get_or_create(&CallLabels { function: function.clone(), code }).inc();
                self.metrics.call_seconds.get_or_create(&labels).observe(self.started.elapsed().as_secs_f64());
                if let Ok(stats) = result {
                    self.metrics.rows_in.get_or_create(&labels).inc_by(stats.rows_in as u64);
                    self.metrics.rows_out.get_or_create(&labels).inc_by(stats.rows_out as u64);
                }
            }
            Counted::Script(engine) => {
                self.metrics.script_evaluations.get_or_create(&ScriptLabels { engine: engine.clone(), code }).inc();
            }
        }
    }

    /// Logs how the call ended; the status to send when it failed (none for a cancellation,
    /// which nobody hears).
    fn finish(&self, result: Result<CallStats, CallError>) -> Result<(), Status> {
        self.count(&result);
        let (function, app) = (&self.function, &self.app);
        let ms = format_args!("{:.1}", self.started.elapsed().as_secs_f64() * 1e3);
        match result {
            Ok(stats) => {
                tracing::info!(%function, rows_in = stats.rows_in, rows_out = stats.rows_out, %ms, %app, "call done");
                Ok(())
            }
            Err(CallError::Cancelled) => {
                tracing::info!(%function, %ms, %app, "call cancelled");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%function, %ms, %app, "call failed: {error}");
                Err(error.to_status())
            }
        }
    }
}

/// A request at most this large, arrived whole, may run inline: on the async runtime's thread
/// that took it in, without waking a call thread and waiting for it (two thread wake-ups, most of
/// a small call's time).
const INLINE_REQUEST_BYTES: usize = 64 << 10;

/// A function whose inline call outgrew its thread runs this many calls on call threads before
/// it is tried inline again (a busy moment can slow any call once).
const THREADED_AFTER_OUTGROWING: u32 = 64;

/// True when a call over `messages` may run inline: small, of a function that has not outgrown
/// it lately (counting down `outgrew`).
fn may_run_inline(outgrew: &AtomicU32, messages: &[Bytes]) -> bool {
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
fn run_whole<J>(
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

/// The response to a call that ran whole: its answers after `metadata`.
fn answered(answers: Vec<Result<EncodedRows, Status>>, metadata: MetadataMap) -> Response<AnswerStream> {
    let mut response = Response::new(Box::pin(futures::stream::iter(answers)) as AnswerStream);
    *response.metadata_mut() = metadata;
    response
}

/// The answer stream handed to tonic; dropping it (the client went away) cancels the call.
struct Answers {
    receiver: mpsc::Receiver<Result<EncodedRows, Status>>,
    _cancel_on_drop: CancelOnDrop,
}

impl Stream for Answers {
    type Item = Result<EncodedRows, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

/// Runs calls on blocking threads, at most as many at once as its call slots allow, and bridges
/// their request and answer messages to and from the gRPC streams.
#[derive(Clone, Debug)]
pub(crate) struct Bridge {
    /// The call slots.
    pub(crate) slots: CallSlots,
    /// How long a call waits on a client that neither sends nor reads.
    pub(crate) stall_timeout: Duration,
    /// Where calls are counted.
    pub(crate) metrics: Arc<Metrics>,
}

impl Bridge {
    /// Runs `job` on a blocking thread over the messages of `requests`, once a call slot is
    /// free, and answers with its messages after `response_metadata` and the headers the job
    /// adds (if `known` lets it). `label` names the call in logs and errors, `counted` in the
    /// metrics. With `inline` (the count of calls still to run threaded since the function last
    /// outgrew it), a small request that has arrived whole runs on the thread that took it in.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn respond<J>(
        &self,
        label: String,
        counted: Counted,
        app: String,
        mut requests: Streaming<WireRows>,
        response_metadata: MetadataMap,
        known: HeadersKnown,
        inline: Option<Arc<AtomicU32>>,
        job: J,
    ) -> Result<Response<AnswerStream>, Status>
    where
        J: Fn(CallControl, Next<'_>, Headers<'_>, Sink<'_>) -> Result<CallStats, CallError> + Send + 'static,
    {
        let stall = self.stall_timeout;
        let cancel = CancelFlag::default();

        // Take in what has already arrived. A chart's small request is usually whole by now; it
        // is then run with a single hop to a blocking thread and answered in one go, instead of
        // waking threads back and forth for every message.
        let mut arrived = VecDeque::new();
        let mut complete = false;
        // `message()` only polls the stream, so dropping it while pending loses nothing.
        while arrived.len() < PREFETCH_MESSAGES {
            let ready = if arrived.is_empty() {
                tokio::time::timeout(stall, requests.message()).await.map_err(|_| Status::from(stalled(stall)))?
            } else {
                match requests.message().now_or_never() {
                    Some(ready) => ready,
                    None => break,
                }
            };
            match ready.map_err(|status| stream_error(&label, &status).to_status())? {
                Some(message) => arrived.push_back(message.0),
                None => {
                    complete = true;
                    break;
                }
            }
        }
        // A call takes its slot once its first message (or the end of an empty stream) is in, so
        // streams that are open but idle hold no slot and cannot starve real calls. Waiting here
        // is the back-pressure: the client sees no answer headers until a slot frees.
        let waiting = Instant::now();
        let slot = self.slots.acquire().await;
        self.metrics.slot_wait_seconds.observe(waiting.elapsed().as_secs_f64());
        // Whatever else arrived while waiting for the slot.
        while !complete && arrived.len() < PREFETCH_MESSAGES {
            match requests.message().now_or_never() {
                Some(Ok(Some(message))) => arrived.push_back(message.0),
                Some(Ok(None)) => complete = true,
                Some(Err(status)) => return Err(stream_error(&label, &status).to_status()),
                None => break,
            }
        }

        let metrics = self.metrics.clone();
        let call = CallLog { function: label.clone(), app, started: Instant::now(), counted, metrics };
        if complete {
            let arrived = Vec::from(arrived);
            let _cancel_on_drop = CancelOnDrop(cancel.clone());
            if let Some(outgrew) = inline.filter(|outgrew| may_run_inline(outgrew, &arrived)) {
                let control = CallControl { cancel: cancel.clone(), inline: true };
                // This blocks the runtime's thread, for no longer than a small call takes: past
                // that the epoch stops it, and it runs again on a call thread.
                let ran = run_whole(&call, &job, control, &arrived, response_metadata.clone(), known);
                match ran {
                    Some((answers, metadata)) => return Ok(answered(answers, metadata)),
                    // Slower than a small call should be: it runs again, and the function's next
                    // calls too, on a call thread, where a client going away stops it at once.
                    None => outgrew.store(THREADED_AFTER_OUTGROWING, Ordering::Relaxed),
                }
            }
            let control = CallControl::threaded(cancel);
            let (answers, metadata) = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                // A call on a call thread has no inline limit to outgrow.
                run_whole(&call, &job, control, &arrived, response_metadata, known).unwrap_or_else(|| {
                    (
                        vec![Err(CallError::Internal("a threaded call reported outgrowing inline".into()).to_status())],
                        MetadataMap::new(),
                    )
                })
            })
            .await
            .map_err(|e| Status::internal(format!("call thread failed: {e}")))?;
            return Ok(answered(answers, metadata));
        }

        let (sender, receiver) = mpsc::channel(RESPONSE_QUEUE);
        let runtime = tokio::runtime::Handle::current();
        let control = CallControl::threaded(cancel.clone());
        // Headers the job decides are sent with its first message (or when it ends).
        let (headers_sender, headers_receiver) = oneshot::channel();
        let (mut metadata, pending) = match known {
            HeadersKnown::Before => (response_metadata, PendingHeaders { metadata: None, sender: None }),
            HeadersKnown::AtFirstMessage => {
                (MetadataMap::new(), PendingHeaders { metadata: Some(response_metadata), sender: Some(headers_sender) })
            }
        };
        tokio::task::spawn_blocking(move || {
            let pending = RefCell::new(pending);
            let _slot = slot;
            let mut next = || {
                if let Some(message) = arrived.pop_front() {
                    return Ok(Some(message));
                }
                match runtime.block_on(tokio::time::timeout(stall, requests.message())) {
                    Ok(message) => message.map(|m| m.map(|m| m.0)).map_err(|status| stream_error(&label, &status)),
                    Err(_) => Err(stalled(stall)),
                }
            };
            let mut headers = |more: MetadataMap| pending.borrow_mut().add(more);
            let mut send = |message| {
                pending.borrow_mut().commit();
                match runtime.block_on(sender.send_timeout(Ok(message), stall)) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(stalled(stall)),
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(CallError::Cancelled),
                }
            };
            let result = run_job(&call.function, || job(control, &mut next, &mut headers, &mut send));
            pending.borrow_mut().commit();
            if let Err(status) = call.finish(result) {
                // The status must follow the answers already queued, or the client would take
                // a partial answer for a whole one. A client that does not read for the stall
                // timeout (or is gone) is not told.
                let _ = runtime.block_on(sender.send_timeout(Err(status), stall));
            }
        });

        let cancel_on_drop = CancelOnDrop(cancel);
        if known == HeadersKnown::AtFirstMessage {
            // A job that fails before deciding drops the sender: its status follows no headers.
            metadata = headers_receiver.await.unwrap_or_default();
        }
        let mut response =
            Response::new(Box::pin(Answers { receiver, _cancel_on_drop: cancel_on_drop }) as AnswerStream);
        *response.metadata_mut() = metadata;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_stream_keeps_the_clients_code_unless_it_is_the_clients_fault() {
        let code = |status: Status| stream_error("F", &status).to_status().code();
        assert_eq!(code(Status::out_of_range("message too large")), tonic::Code::OutOfRange);
        assert_eq!(code(Status::resource_exhausted("too large")), tonic::Code::ResourceExhausted);
        for bad in [Status::internal("h2 protocol error"), Status::unknown("?"), Status::data_loss("cut")] {
            assert_eq!(code(bad), tonic::Code::InvalidArgument);
        }
        assert!(matches!(stream_error("F", &Status::cancelled("reset")), CallError::Cancelled));
        assert!(
            stream_error("F", &Status::internal("bad frame")).to_string().starts_with("F: the request stream failed")
        );
    }

    #[test]
    fn a_panicking_job_becomes_an_internal_error_naming_the_call() {
        let error = run_job::<()>("SumOfRows", || panic!("index out of bounds")).unwrap_err();
        assert!(matches!(&error, CallError::Internal(message) if message.contains("SumOfRows")), "{error}");
        assert_eq!(run_job("F", || Ok(3)).expect("no panic"), 3);
    }
}
