//! One call of one function: a fresh instance, the request's batches fed to the guest as they
//! arrive, every answer checked against the declaration and streamed back in capped messages.
//!
//! This runs on a blocking thread: guest code is CPU work and must not stall the async runtime.
//! It pulls request messages through `next` and pushes answers through `send`, so it knows nothing
//! of gRPC streams.

use wasmtime::Store;

use crate::bindings::Plugin;
use crate::bindings::qlik::sse::types as wit;
use crate::columns::{Batch, DataType, ToMessagesError};
use crate::engine::{CallState, CancelFlag, Engine, guarded};
use crate::error::CallError;
use crate::module::Mode;
use crate::pb;
use crate::registry::Entry;

/// The largest response message the host sends, in encoded bytes: far below the 4 MiB Qlik
/// accepts, so a message never nears the limit whatever its last row.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// What a finished call did, for the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Rows received.
    pub rows_in: usize,
    /// Rows answered.
    pub rows_out: usize,
}

/// The guest-facing half of a call.
struct Call<'a, S> {
    entry: &'a Entry,
    store: Store<CallState>,
    plugin: Plugin,
    params: Vec<DataType>,
    results: Vec<DataType>,
    send: S,
    stats: CallStats,
}

/// Runs one call of `entry`: reads request messages with `next` until it returns `None`, and
/// hands every answer message to `send`, which fails once nobody listens.
pub fn run<N, S>(
    engine: &Engine,
    entry: &Entry,
    cancel: CancelFlag,
    mut next: N,
    send: S,
) -> Result<CallStats, CallError>
where
    N: FnMut() -> Result<Option<pb::BundledRows>, CallError>,
    S: FnMut(pb::BundledRows) -> Result<(), CallError>,
{
    let def = entry.def();
    let mut store = engine.store(&entry.module.name, Some(cancel));
    let plugin = entry.module.instantiate(&mut store, &def.name)?;
    let mut call = Call {
        entry,
        store,
        plugin,
        params: def.param_types(),
        results: def.result_types(),
        send,
        stats: CallStats::default(),
    };

    match def.mode {
        Mode::PerBatch => {
            while let Some(message) = next()? {
                let batch = call.input(&message)?;
                if batch.rows > 0 {
                    let rows = batch.rows;
                    let answer = call.guest(
                        |store, plugin, input| plugin.qlik_sse_functions().call_call(store, entry.index, input),
                        batch,
                    )?;
                    if answer.rows != rows {
                        return Err(call.bad_output(format!("{} rows for a batch of {rows}", answer.rows)));
                    }
                    call.answer(answer)?;
                }
            }
        }
        Mode::PerCall => {
            let invocation = guarded(&mut call.store, &def.name, |store| {
                call.plugin.qlik_sse_functions().invocation().call_constructor(store, entry.index)
            })?;
            while let Some(message) = next()? {
                let batch = call.input(&message)?;
                let answer = call.guest(
                    |store, plugin, input| {
                        plugin.qlik_sse_functions().invocation().call_update(store, invocation, input)
                    },
                    batch,
                )?;
                call.answer(answer)?;
            }
            let name = def.name.as_str();
            let finished = guarded(&mut call.store, name, |store| {
                call.plugin.qlik_sse_functions().invocation().call_finish(store, invocation)
            })?
            .map_err(|message| CallError::Guest { function: name.to_owned(), message })?;
            call.answer(finished.into())?;
            // The instance is thrown away with the store, and the invocation with it; dropping it
            // explicitly lets a guest's destructor run while the call is still accounted for.
            guarded(&mut call.store, name, |store| invocation.resource_drop(store))?;
        }
    }

    if let Some(expected) = def.expected_rows(call.stats.rows_in)
        && call.stats.rows_out != expected
    {
        return Err(call.bad_output(format!(
            "{} rows in all for {} input rows (expected {expected})",
            call.stats.rows_out, call.stats.rows_in
        )));
    }
    Ok(call.stats)
}

impl<S: FnMut(pb::BundledRows) -> Result<(), CallError>> Call<'_, S> {
    /// Turns a request message into a batch of the declared parameter types.
    fn input(&mut self, message: &pb::BundledRows) -> Result<Batch, CallError> {
        let batch = Batch::from_rows(&message.rows, &self.params)
            .map_err(|reason| CallError::BadInput { function: self.entry.def().name.clone(), reason })?;
        self.stats.rows_in += batch.rows;
        Ok(batch)
    }

    /// Hands `input` to the guest through `f` and checks the answer's shape.
    fn guest<F>(&mut self, f: F, input: Batch) -> Result<Batch, CallError>
    where
        F: FnOnce(&mut Store<CallState>, &Plugin, &wit::Batch) -> wasmtime::Result<Result<wit::Batch, String>>,
    {
        let name = self.entry.def().name.as_str();
        let input =
            wit::Batch::try_from(input).map_err(|reason| CallError::BadInput { function: name.to_owned(), reason })?;
        let plugin = &self.plugin;
        let answer = guarded(&mut self.store, name, |store| f(store, plugin, &input))?
            .map_err(|message| CallError::Guest { function: name.to_owned(), message })?;
        Ok(answer.into())
    }

    /// Checks an answer against the declared result columns and streams it.
    fn answer(&mut self, answer: Batch) -> Result<(), CallError> {
        answer.check(&self.results).map_err(|reason| self.bad_output(reason))?;
        self.stats.rows_out += answer.rows;
        if self.entry.def().function_type == pb::FunctionType::Aggregation && self.stats.rows_out > 1 {
            return Err(self.bad_output(format!("{} rows where an aggregation answers 1", self.stats.rows_out)));
        }
        answer.to_messages(MAX_RESPONSE_BYTES, &mut self.send).map_err(|error| match error {
            ToMessagesError::Emit(error) => error,
            ToMessagesError::OversizedRow(bytes) => {
                CallError::OversizedRow { function: self.entry.def().name.clone(), bytes }
            }
        })
    }

    fn bad_output(&self, reason: String) -> CallError {
        CallError::BadOutput { function: self.entry.def().name.clone(), reason }
    }
}
