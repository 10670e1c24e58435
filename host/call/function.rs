//! One call of one function: request messages decoded into typed columns as they arrive, fed to
//! the implementation (a fresh Wasm instance, or native code), every answer checked against the
//! declaration and encoded into capped messages.

use bytes::Bytes;

use crate::error::CallError;
use crate::model::{Batch, FunctionDef, FunctionType, Mode};
use crate::registry::{Entry, Implementation};
use crate::wasm::{CancelFlag, Runtime};
use crate::wire::codec::{self, EncodeError, EncodedRows, MAX_RESPONSE_BYTES};

#[cfg(feature = "native")]
use super::native;
use super::{Backend, CallStats};

/// Runs one call of `entry`: reads request messages with `next` until it returns `None`, and
/// hands every answer message to `send`, which fails once nobody listens.
pub fn run<N, S>(runtime: &Runtime, entry: &Entry, cancel: CancelFlag, next: N, send: S) -> Result<CallStats, CallError>
where
    N: FnMut() -> Result<Option<Bytes>, CallError>,
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    let def = entry.def();
    match &entry.implementation {
        Implementation::Wasm { guest, index } => run_on(def, guest.instantiate(runtime, *index, cancel)?, next, send),
        #[cfg(feature = "native")]
        Implementation::Native(function) => run_on(def, native::Native::new(function.as_ref()), next, send),
    }
}

/// The protocol of a call, whatever runs the code: decode each request message with the
/// parameter types, feed the backend, check each answer against the declaration, encode it.
pub(crate) fn run_on<B, N, S>(
    def: &FunctionDef,
    mut backend: B,
    mut next: N,
    mut send: S,
) -> Result<CallStats, CallError>
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
        if def.function_type == FunctionType::Aggregation && stats.rows_out > 1 {
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
