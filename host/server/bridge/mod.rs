//! The bridge between tonic's async streams and a call's blocking thread: call slots
//! (back-pressure), taking in a request that has already arrived whole, the stall timeout,
//! cancellation when the client goes away, answer headers a call decides while it runs.
//!
//! `job` is what a call's job sees and how it runs, `slots` the call slots, `call_log` one log
//! line and the metrics per call, `inline` small calls on the thread that took them in.

mod call_log;
mod inline;
mod job;
mod slots;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream};
use tokio::sync::{mpsc, oneshot};
use tonic::metadata::MetadataMap;
use tonic::{Response, Status, Streaming};

use crate::error::CallError;
use crate::functions::call::CallStats;
use crate::observe::metrics::Metrics;
use crate::wasm::{CallControl, CancelFlag};
use crate::wire::codec::{EncodedRows, WireRows};

use call_log::CallLog;
pub(crate) use call_log::Counted;
use inline::{THREADED_AFTER_OUTGROWING, may_run_inline, run_whole};
pub(crate) use job::{Headers, HeadersKnown, Next, Sink};
use job::{PendingHeaders, run_job, stalled, stream_error};
pub use slots::CallSlots;

/// How many answer messages may wait for a slow client before the call thread waits too.
const RESPONSE_QUEUE: usize = 4;

/// A stream of answers, as tonic sends them.
pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<EncodedRows, Status>> + Send>>;

/// Request messages taken in before a call starts; past this many it streams.
const PREFETCH_MESSAGES: usize = 8;

/// Cancels a call when dropped: held by whatever the client's going away drops (the request
/// handler while a whole request runs, the answer stream while a call streams).
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
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
