//! One call of one function: request messages decoded into typed columns as they arrive, fed to
//! the implementation (a fresh Wasm instance, or native code), every answer checked against the
//! declaration and encoded into capped messages.
//!
//! This runs on a blocking thread: guest code and the codec are CPU work and must not stall the
//! async runtime. It pulls request messages through `next` and pushes answers through `send`, so
//! it knows nothing of gRPC streams.

use bytes::Bytes;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::bindings::Plugin;
use crate::bindings::qlik::sse::types as wit;
use crate::codec::{self, EncodeError, EncodedRows, MAX_RESPONSE_BYTES};
use crate::columns::Batch;
use crate::engine::{CallState, CancelFlag, Engine, guarded};
use crate::error::CallError;
use crate::module::{FunctionDef, Mode};
use crate::native::{NativeFunction, NativeInvocation};
use crate::pb;
use crate::registry::{Entry, Source};

/// What a finished call did, for the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Rows received.
    pub rows_in: usize,
    /// Rows answered.
    pub rows_out: usize,
}

/// What runs a function's code for one call. Errors from the code itself are `Err(String)`
/// inside `Ok`; the outer error is a fault (trap, deadline, cancellation).
trait Backend {
    /// A per-batch function's answer to one batch.
    fn call(&mut self, input: Batch) -> Result<Result<Batch, String>, CallError>;
    /// Starts a per-call function.
    fn start(&mut self) -> Result<(), CallError>;
    /// Feeds a per-call function one batch.
    fn update(&mut self, input: Batch) -> Result<Result<Batch, String>, CallError>;
    /// Ends a per-call function.
    fn finish(&mut self) -> Result<Result<Batch, String>, CallError>;
}

/// A fresh instance of a component, in its own store.
struct Wasm<'a> {
    name: &'a str,
    index: u32,
    store: Store<CallState>,
    plugin: Plugin,
    invocation: Option<ResourceAny>,
}

impl Wasm<'_> {
    fn lower(&self, input: Batch) -> Result<wit::Batch, CallError> {
        wit::Batch::try_from(input).map_err(|reason| CallError::BadInput { function: self.name.to_owned(), reason })
    }

    fn invocation(&self) -> Result<ResourceAny, CallError> {
        self.invocation.ok_or_else(|| CallError::Internal("per-call function used before it started".into()))
    }
}

impl Backend for Wasm<'_> {
    fn call(&mut self, input: Batch) -> Result<Result<Batch, String>, CallError> {
        let (input, plugin, index) = (self.lower(input)?, &self.plugin, self.index);
        let answer = guarded(&mut self.store, self.name, |s| plugin.qlik_sse_functions().call_call(s, index, &input))?;
        Ok(answer.map(Batch::from))
    }

    fn start(&mut self) -> Result<(), CallError> {
        let (plugin, index) = (&self.plugin, self.index);
        let invocation = guarded(&mut self.store, self.name, |s| {
            plugin.qlik_sse_functions().invocation().call_constructor(s, index)
        })?;
        self.invocation = Some(invocation);
        Ok(())
    }

    fn update(&mut self, input: Batch) -> Result<Result<Batch, String>, CallError> {
        let (input, plugin, invocation) = (self.lower(input)?, &self.plugin, self.invocation()?);
        let answer = guarded(&mut self.store, self.name, |s| {
            plugin.qlik_sse_functions().invocation().call_update(s, invocation, &input)
        })?;
        Ok(answer.map(Batch::from))
    }

    fn finish(&mut self) -> Result<Result<Batch, String>, CallError> {
        let (plugin, invocation) = (&self.plugin, self.invocation()?);
        let answer = guarded(&mut self.store, self.name, |s| {
            plugin.qlik_sse_functions().invocation().call_finish(s, invocation)
        })?;
        // The instance is thrown away with the store, and the invocation with it; dropping it
        // explicitly lets a guest's destructor run while the call is still accounted for.
        guarded(&mut self.store, self.name, |s| invocation.resource_drop(s))?;
        self.invocation = None;
        Ok(answer.map(Batch::from))
    }
}

/// Native code: no instance, no store.
struct Native<'a> {
    function: &'a dyn NativeFunction,
    invocation: Option<Box<dyn NativeInvocation>>,
}

impl Native<'_> {
    fn invocation(&mut self) -> Result<&mut Box<dyn NativeInvocation>, CallError> {
        self.invocation.as_mut().ok_or_else(|| CallError::Internal("per-call function used before it started".into()))
    }
}

impl Backend for Native<'_> {
    fn call(&mut self, input: Batch) -> Result<Result<Batch, String>, CallError> {
        Ok(self.function.call(input))
    }
    fn start(&mut self) -> Result<(), CallError> {
        self.invocation = Some(self.function.invocation());
        Ok(())
    }
    fn update(&mut self, input: Batch) -> Result<Result<Batch, String>, CallError> {
        Ok(self.invocation()?.update(input))
    }
    fn finish(&mut self) -> Result<Result<Batch, String>, CallError> {
        Ok(self.invocation()?.finish())
    }
}

/// Runs one call of `entry`: reads request messages with `next` until it returns `None`, and
/// hands every answer message to `send`, which fails once nobody listens.
pub fn run<N, S>(engine: &Engine, entry: &Entry, cancel: CancelFlag, next: N, send: S) -> Result<CallStats, CallError>
where
    N: FnMut() -> Result<Option<Bytes>, CallError>,
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    let def = entry.def();
    match &entry.source {
        Source::Wasm { module, index } => {
            let mut store = engine.store(&module.name, Some(cancel));
            let plugin = module.instantiate(&mut store, &def.name)?;
            let backend = Wasm { name: &def.name, index: *index, store, plugin, invocation: None };
            drive(def, backend, next, send)
        }
        Source::Native(function) => drive(def, Native { function: function.as_ref(), invocation: None }, next, send),
    }
}

/// The protocol of a call, whatever runs the code.
fn drive<B, N, S>(def: &FunctionDef, mut backend: B, mut next: N, mut send: S) -> Result<CallStats, CallError>
where
    B: Backend,
    N: FnMut() -> Result<Option<Bytes>, CallError>,
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    let name = def.name.as_str();
    let (params, results) = (def.param_types(), def.result_types());
    let mut stats = CallStats::default();
    let bad_output = |reason: String| CallError::BadOutput { function: name.to_owned(), reason };
    let guest_error = |message: String| CallError::Guest { function: name.to_owned(), message };
    let decode = |message: Bytes, stats: &mut CallStats| {
        let batch = codec::decode(&message, &params)
            .map_err(|error| CallError::BadInput { function: name.to_owned(), reason: error.to_string() })?;
        stats.rows_in += batch.rows;
        Ok::<_, CallError>(batch)
    };
    let mut answer = |batch: Batch, stats: &mut CallStats| {
        batch.check(&results).map_err(bad_output)?;
        stats.rows_out += batch.rows;
        if def.function_type == pb::FunctionType::Aggregation && stats.rows_out > 1 {
            return Err(bad_output(format!("{} rows where an aggregation answers 1", stats.rows_out)));
        }
        codec::encode(&batch, MAX_RESPONSE_BYTES, &mut send).map_err(|error| match error {
            EncodeError::Emit(error) => error,
            EncodeError::OversizedRow(bytes) => CallError::OversizedRow { function: name.to_owned(), bytes },
        })
    };

    match def.mode {
        Mode::PerBatch => {
            while let Some(message) = next()? {
                let batch = decode(message, &mut stats)?;
                let rows = batch.rows;
                if rows > 0 {
                    let output = backend.call(batch)?.map_err(guest_error)?;
                    if output.rows != rows {
                        return Err(bad_output(format!("{} rows for a batch of {rows}", output.rows)));
                    }
                    answer(output, &mut stats)?;
                }
            }
        }
        Mode::PerCall => {
            backend.start()?;
            while let Some(message) = next()? {
                let batch = decode(message, &mut stats)?;
                let output = backend.update(batch)?.map_err(guest_error)?;
                answer(output, &mut stats)?;
            }
            let output = backend.finish()?.map_err(guest_error)?;
            answer(output, &mut stats)?;
        }
    }

    if let Some(expected) = def.expected_rows(stats.rows_in)
        && stats.rows_out != expected
    {
        return Err(bad_output(format!(
            "{} rows in all for {} input rows (expected {expected})",
            stats.rows_out, stats.rows_in
        )));
    }
    Ok(stats)
}
