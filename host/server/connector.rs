//! The `qlik.sse.Connector` gRPC service: request headers read as protobuf reads them, the
//! function or script engine looked up in the registry snapshot the call keeps, and the call
//! handed to the bridge.

use std::sync::Arc;

use prost::Message;
use tokio::sync::watch;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use crate::error::CallError;
use crate::functions::call::{self, CallStats};
use crate::functions::registry::SharedRegistry;
use crate::model::ScriptTable;
use crate::wasm::{CallControl, ModelStore, Runtime};
use crate::wire::codec::WireRows;
use crate::wire::format::{self, Schema};
use crate::wire::pb::raw::connector_server::Connector;
use crate::wire::{convert, pb};

use super::bridge::{AnswerStream, Bridge, Counted, Headers, HeadersKnown, Next, Sink};
use super::capture::Capture;
use super::options::ServeOptions;

/// The service Qlik talks to.
#[derive(Clone)]
pub(crate) struct ConnectorService {
    runtime: Runtime,
    registry: SharedRegistry,
    bridge: Bridge,
    /// True once `registry` holds the whole functions folder.
    ready: watch::Receiver<bool>,
    scripts: bool,
    script_language: Option<String>,
    models: Option<Arc<ModelStore>>,
    capture: Option<Arc<Capture>>,
}

impl ConnectorService {
    /// Serves the functions and script engines of `registry`, run by `runtime`, through `bridge`,
    /// as `options` say (scripts on or off, their default language).
    pub(crate) fn new(
        runtime: Runtime,
        registry: SharedRegistry,
        bridge: Bridge,
        ready: watch::Receiver<bool>,
        options: &ServeOptions,
    ) -> Self {
        let script_language = options.script_language.clone();
        let (models, capture) = (options.models.clone(), options.capture.clone());
        Self { runtime, registry, bridge, ready, scripts: options.scripts, script_language, models, capture }
    }
}

impl ConnectorService {
    /// Waits, up to the stall timeout, until the functions folder is loaded: Qlik keeps what
    /// GetCapabilities says at its handshake, so it must never see a partial list.
    async fn loaded(&self) -> Result<(), Status> {
        if *self.ready.borrow() {
            return Ok(());
        }
        let mut ready = self.ready.clone();
        match tokio::time::timeout(self.bridge.stall_timeout, ready.wait_for(|ready| *ready)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Status::unavailable("the host is still loading its functions folder; try again shortly")),
        }
    }
}

/// Decodes the protobuf header stored under `key` as protobuf reads it (a known field sent with
/// another wire type is an unknown field, which prost alone would refuse); `None` when the key is
/// absent.
fn header<T: Message + Default>(metadata: &MetadataMap, key: &str, schema: Schema) -> Result<Option<T>, CallError> {
    let Some(value) = metadata.get_bin(key) else { return Ok(None) };
    let bytes = value.to_bytes().map_err(|_| CallError::BadHeader(format!("{key} is not valid base64")))?;
    let bytes =
        format::normalize(&bytes, schema).map_err(|e| CallError::BadHeader(format!("{key} does not decode: {e}")))?;
    T::decode(&bytes[..]).map(Some).map_err(|e| CallError::BadHeader(format!("{key} does not decode: {e}")))
}

#[tonic::async_trait]
impl Connector for ConnectorService {
    async fn get_capabilities(&self, _: Request<pb::Empty>) -> Result<Response<pb::Capabilities>, Status> {
        self.loaded().await?;
        Ok(Response::new(pb::Capabilities {
            allow_script: self.scripts && self.registry.load().script_engines().next().is_some(),
            functions: self
                .registry
                .load()
                .entries()
                .into_iter()
                .map(|entry| convert::function_definition(entry.def(), entry.id))
                .collect(),
            plugin_identifier: "sse-wasm".to_owned(),
            plugin_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    type ExecuteFunctionStream = AnswerStream;

    async fn execute_function(&self, request: Request<Streaming<WireRows>>) -> Result<Response<AnswerStream>, Status> {
        self.loaded().await?;
        let (metadata, _, requests) = request.into_parts();
        let function: pb::FunctionRequestHeader =
            header(&metadata, pb::FUNCTION_HEADER, format::FUNCTION_REQUEST_HEADER)?
                .ok_or_else(|| CallError::BadHeader(format!("the {} header is missing", pb::FUNCTION_HEADER)))?;
        let common: pb::CommonRequestHeader =
            header(&metadata, pb::COMMON_HEADER, format::COMMON_REQUEST_HEADER)?.unwrap_or_default();
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
        if let Some(description) = convert::table_description(def) {
            response_metadata
                .insert_bin(pb::TABLE_DESCRIPTION, MetadataValue::from_bytes(&description.encode_to_vec()));
        }

        let runtime = self.runtime.clone();
        let label = def.name.clone();
        // A captured call records its messages as they arrive, on a call thread (never inline,
        // where a call may run twice).
        let capture = self.capture.as_ref().and_then(|capture| {
            let raw = |key: &'static str| metadata.get_bin(key).and_then(|v| v.to_bytes().ok()).map(|b| (key, b));
            let headers: Vec<_> = [pb::FUNCTION_HEADER, pb::COMMON_HEADER].into_iter().filter_map(raw).collect();
            let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, &v[..])).collect();
            capture.start(&def.name, &headers)
        });
        let inline = capture.is_none().then(|| entry.outgrew_inline.clone());
        let capture = std::sync::Mutex::new(capture);
        // The one thing a call may keep for later calls: its app's models.
        let models = self.models.as_ref().map(|store| store.app(&common.app_id));
        let job = move |control: CallControl,
                        next: Next<'_>,
                        _: Headers<'_>,
                        send: Sink<'_>|
              -> Result<CallStats, CallError> {
            let mut capture = capture.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = || {
                let message = next()?;
                if let (Some(message), Some(capture)) = (&message, capture.as_mut()) {
                    capture.message(message);
                }
                Ok(message)
            };
            call::function::run(&runtime, &entry, control, models.clone(), &mut next, send)
        };
        let counted = Counted::Function(label.clone());
        let known = HeadersKnown::Before;
        self.bridge.respond(label, counted, common.app_id, requests, response_metadata, known, inline, job).await
    }

    type EvaluateScriptStream = AnswerStream;

    async fn evaluate_script(&self, request: Request<Streaming<WireRows>>) -> Result<Response<AnswerStream>, Status> {
        if !self.scripts {
            return Err(CallError::ScriptsDisabled.to_status());
        }
        self.loaded().await?;
        let (metadata, _, requests) = request.into_parts();
        let script: pb::ScriptRequestHeader = header(&metadata, pb::SCRIPT_HEADER, format::SCRIPT_REQUEST_HEADER)?
            .ok_or_else(|| CallError::BadHeader(format!("the {} header is missing", pb::SCRIPT_HEADER)))?;
        let common: pb::CommonRequestHeader =
            header(&metadata, pb::COMMON_HEADER, format::COMMON_REQUEST_HEADER)?.unwrap_or_default();
        let script = convert::script(script).map_err(CallError::BadHeader)?;
        let registry = self.registry.load_full();
        let guest = registry.script_engine(script.marker().as_deref(), self.script_language.as_deref())?.clone();
        let label = format!("script ({})", guest.name);
        let language = guest.scripts.as_ref().map_or_else(String::new, |s| s.language.clone());
        let counted = Counted::Script(language);
        let job = move |control: CallControl, next: Next<'_>, headers: Headers<'_>, send: Sink<'_>| {
            let engine = guest.scripts.as_ref().ok_or_else(|| CallError::Internal("not a script engine".into()))?;
            // A script that describes its table sends it as Qlik's TableDescription header.
            let table = |table: Option<&ScriptTable>| {
                if let Some(table) = table {
                    let mut metadata = MetadataMap::new();
                    let description = convert::script_table(table).encode_to_vec();
                    metadata.insert_bin(pb::TABLE_DESCRIPTION, MetadataValue::from_bytes(&description));
                    headers(metadata);
                }
            };
            call::script::run(engine, &script, control.cancel, next, table, send)
        };
        let known = HeadersKnown::AtFirstMessage;
        // Scripts take milliseconds: always on a call thread.
        self.bridge.respond(label, counted, common.app_id, requests, MetadataMap::new(), known, None, job).await
    }
}
