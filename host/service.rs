//! The `qlik.sse.Connector` gRPC service: headers in, a call thread per stream, answers out.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{FutureExt, Stream};
use prost::Message;
use tokio::sync::mpsc;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use bytes::Bytes;

use crate::codec::{EncodedRows, WireRows};
use crate::config::ServeOptions;
use crate::engine::{CancelFlag, Engine};
use crate::error::CallError;
use crate::invoke::{self, CallStats};
use crate::pb;
use crate::pb::wire::connector_server::Connector;
use crate::registry::SharedRegistry;
use crate::script::{self, Script};
use crate::server::CallSlots;
use crate::wire_format::{self, Schema};

/// How many answer messages may wait for a slow client before the call thread waits too.
const RESPONSE_QUEUE: usize = 4;

/// A stream of answers, as tonic sends them.
pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<EncodedRows, Status>> + Send>>;

/// The service Qlik talks to.
#[derive(Clone)]
pub struct ConnectorService {
    engine: Engine,
    registry: SharedRegistry,
    slots: CallSlots,
    stall_timeout: Duration,
    scripts: bool,
    script_language: Option<String>,
}

/// Where a call reads its request messages from.
type Next<'a> = &'a mut dyn FnMut() -> Result<Option<Bytes>, CallError>;
/// Where a call sends its answer messages to.
type Sink<'a> = &'a mut dyn FnMut(EncodedRows) -> Result<(), CallError>;

impl ConnectorService {
    /// Serves the functions and script engines of `registry`, run by `engine`, at most as many
    /// at once as `slots` allows, as `options` say (stall timeout, scripts on or off).
    pub fn new(engine: Engine, registry: SharedRegistry, slots: CallSlots, options: &ServeOptions) -> Self {
        Self {
            engine,
            registry,
            slots,
            stall_timeout: options.stall_timeout,
            scripts: options.scripts,
            script_language: options.script_language.clone(),
        }
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

/// Decodes the protobuf header stored under `key` as protobuf reads it (a known field sent with
/// another wire type is an unknown field, which prost alone would refuse); `None` when the key is
/// absent.
fn header<T: Message + Default>(metadata: &MetadataMap, key: &str, schema: Schema) -> Result<Option<T>, CallError> {
    let Some(value) = metadata.get_bin(key) else { return Ok(None) };
    let bytes = value.to_bytes().map_err(|_| CallError::BadHeader(format!("{key} is not valid base64")))?;
    let bytes = wire_format::normalize(&bytes, schema)
        .map_err(|e| CallError::BadHeader(format!("{key} does not decode: {e}")))?;
    T::decode(&bytes[..]).map(Some).map_err(|e| CallError::BadHeader(format!("{key} does not decode: {e}")))
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

/// One log line per call.
struct CallLog {
    function: String,
    app: String,
    started: Instant,
}

impl CallLog {
    /// Logs how the call ended; the status to send when it failed (none for a cancellation,
    /// which nobody hears).
    fn finish(&self, result: Result<invoke::CallStats, CallError>) -> Result<(), Status> {
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

impl ConnectorService {
    /// Runs `job` on a blocking thread over the messages of `requests`, once a call slot is
    /// free, and answers with its messages after `response_metadata`. `label` names the call
    /// in logs and errors.
    async fn respond<J>(
        &self,
        label: String,
        app: String,
        mut requests: Streaming<WireRows>,
        response_metadata: MetadataMap,
        job: J,
    ) -> Result<Response<AnswerStream>, Status>
    where
        J: FnOnce(CancelFlag, Next<'_>, Sink<'_>) -> Result<CallStats, CallError> + Send + 'static,
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
        let slot = self.slots.acquire().await;
        // Whatever else arrived while waiting for the slot.
        while !complete && arrived.len() < PREFETCH_MESSAGES {
            match requests.message().now_or_never() {
                Some(Ok(Some(message))) => arrived.push_back(message.0),
                Some(Ok(None)) => complete = true,
                Some(Err(status)) => return Err(stream_error(&label, &status).to_status()),
                None => break,
            }
        }

        let call = CallLog { function: label.clone(), app, started: Instant::now() };
        if complete {
            let _cancel_on_drop = CancelOnDrop(cancel.clone());
            let answers = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                let mut answers = Vec::new();
                let mut next = || Ok(arrived.pop_front());
                let mut send = |message| {
                    answers.push(Ok(message));
                    Ok(())
                };
                let result = run_job(&call.function, || job(cancel, &mut next, &mut send));
                if let Err(error) = call.finish(result) {
                    answers.push(Err(error));
                }
                answers
            })
            .await
            .map_err(|e| Status::internal(format!("call thread failed: {e}")))?;
            let mut response = Response::new(Box::pin(futures::stream::iter(answers)) as AnswerStream);
            *response.metadata_mut() = response_metadata;
            return Ok(response);
        }

        let (sender, receiver) = mpsc::channel(RESPONSE_QUEUE);
        let runtime = tokio::runtime::Handle::current();
        let call_cancel = cancel.clone();
        tokio::task::spawn_blocking(move || {
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
            let mut send = |message| match runtime.block_on(sender.send_timeout(Ok(message), stall)) {
                Ok(()) => Ok(()),
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(stalled(stall)),
                Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(CallError::Cancelled),
            };
            let result = run_job(&call.function, || job(call_cancel, &mut next, &mut send));
            if let Err(status) = call.finish(result) {
                // The status must follow the answers already queued, or the client would take
                // a partial answer for a whole one. A client that does not read for the stall
                // timeout (or is gone) is not told.
                let _ = runtime.block_on(sender.send_timeout(Err(status), stall));
            }
        });

        let mut response =
            Response::new(Box::pin(Answers { receiver, _cancel_on_drop: CancelOnDrop(cancel) }) as AnswerStream);
        *response.metadata_mut() = response_metadata;
        Ok(response)
    }
}

#[tonic::async_trait]
impl Connector for ConnectorService {
    async fn get_capabilities(&self, _: Request<pb::Empty>) -> Result<Response<pb::Capabilities>, Status> {
        Ok(Response::new(pb::Capabilities {
            allow_script: self.scripts && self.registry.load().script_engines().next().is_some(),
            functions: self.registry.load().function_definitions(),
            plugin_identifier: "sse-wasm".to_owned(),
            plugin_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    type ExecuteFunctionStream = AnswerStream;

    async fn execute_function(&self, request: Request<Streaming<WireRows>>) -> Result<Response<AnswerStream>, Status> {
        let (metadata, _, requests) = request.into_parts();
        let function: pb::FunctionRequestHeader =
            header(&metadata, pb::FUNCTION_HEADER, wire_format::FUNCTION_REQUEST_HEADER)?
                .ok_or_else(|| CallError::BadHeader(format!("the {} header is missing", pb::FUNCTION_HEADER)))?;
        let common: pb::CommonRequestHeader =
            header(&metadata, pb::COMMON_HEADER, wire_format::COMMON_REQUEST_HEADER)?.unwrap_or_default();
        // The call keeps the snapshot it starts with, whatever reloads happen meanwhile.
        let registry = self.registry.load_full();
        let id = function.function_id;
        let entry = registry.get(id).cloned().ok_or_else(|| match registry.former_name(id) {
            Some(name) => CallError::RemovedFunction { id, name: name.to_owned() },
            None => CallError::UnknownFunction(id),
        })?;
        let def = entry.def();

        let mut response_metadata = MetadataMap::new();
        if !def.cacheable {
            response_metadata.insert(pb::CACHE, MetadataValue::from_static("no-store"));
        }
        if let Some(table) = &def.table {
            let description = pb::TableDescription {
                fields: table
                    .fields
                    .iter()
                    .map(|(name, t)| pb::FieldDescription {
                        data_type: t.to_pb() as i32,
                        name: name.clone(),
                        tags: Vec::new(),
                    })
                    .collect(),
                name: table.name.clone(),
                number_of_rows: i64::from(def.function_type == pb::FunctionType::Aggregation),
            };
            response_metadata
                .insert_bin(pb::TABLE_DESCRIPTION, MetadataValue::from_bytes(&description.encode_to_vec()));
        }

        let engine = self.engine.clone();
        let label = def.name.clone();
        let job =
            move |cancel: CancelFlag, next: Next<'_>, send: Sink<'_>| invoke::run(&engine, &entry, cancel, next, send);
        self.respond(label, common.app_id, requests, response_metadata, job).await
    }

    type EvaluateScriptStream = AnswerStream;

    async fn evaluate_script(&self, request: Request<Streaming<WireRows>>) -> Result<Response<AnswerStream>, Status> {
        if !self.scripts {
            return Err(CallError::ScriptsDisabled.to_status());
        }
        let (metadata, _, requests) = request.into_parts();
        let script: pb::ScriptRequestHeader = header(&metadata, pb::SCRIPT_HEADER, wire_format::SCRIPT_REQUEST_HEADER)?
            .ok_or_else(|| CallError::BadHeader(format!("the {} header is missing", pb::SCRIPT_HEADER)))?;
        let common: pb::CommonRequestHeader =
            header(&metadata, pb::COMMON_HEADER, wire_format::COMMON_REQUEST_HEADER)?.unwrap_or_default();
        let script = Script::from_header(script)?;
        let registry = self.registry.load_full();
        let module = registry.script_engine(script.marker().as_deref(), self.script_language.as_deref())?.clone();
        let label = format!("script ({})", module.name);
        let job = move |cancel: CancelFlag, next: Next<'_>, send: Sink<'_>| {
            let scripts = module.scripts.as_ref().ok_or_else(|| CallError::Internal("not a script engine".into()))?;
            script::run(scripts, &script, cancel, next, send)
        };
        self.respond(label, common.app_id, requests, MetadataMap::new(), job).await
    }
}
