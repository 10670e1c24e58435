//! Calls: the protocol of a function call and of a script evaluation, from request messages to
//! answer messages, whatever runs the code.
//!
//! A call runs on a blocking thread: guest code and the codec are CPU work and must not stall the
//! async runtime. It pulls request messages through `next` and pushes answers through `send`, so
//! it knows nothing of gRPC streams (`server` bridges them). Depends on `model`, `wire` (the row
//! codec), `wasm`, `registry` and `error`.

use crate::error::CallError;
use crate::model::{Batch, DataType};
use crate::wasm::{FunctionInstance, PyCall};
use crate::wire::codec::{self, EncodeError, EncodedRows, MAX_RESPONSE_BYTES};

pub mod function;
#[cfg(feature = "native")]
mod native;
pub(crate) mod script;

/// What a finished call did, for the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Rows received.
    pub rows_in: usize,
    /// Rows answered.
    pub rows_out: usize,
}

pub use crate::wasm::Answer;

/// What feeding a per-call function one request message gives: the rows the message held, and
/// the function's answer so far (or the error it answered), unless the host failed.
pub(crate) type Fed = Result<(usize, Result<Batch, String>), CallError>;

/// What runs a function's code for one call.
pub(crate) trait Backend {
    /// A per-batch function's answer to one batch.
    fn call(&mut self, input: Batch) -> Answer;
    /// Starts a per-call function.
    fn start(&mut self) -> Result<(), CallError>;
    /// Feeds a per-call function (`function`, of parameters `params`) one request message: the
    /// rows it held, and the function's answer so far (or its error).
    fn update(&mut self, function: &str, message: &[u8], params: &[DataType]) -> Fed;
    /// Ends a per-call function: its remaining rows.
    fn finish(&mut self) -> Answer;
}

impl Backend for FunctionInstance {
    fn call(&mut self, input: Batch) -> Answer {
        FunctionInstance::call(self, input)
    }
    fn start(&mut self) -> Result<(), CallError> {
        FunctionInstance::start(self)
    }
    fn update(&mut self, function: &str, message: &[u8], params: &[DataType]) -> Fed {
        update_with(function, message, params, |batch| FunctionInstance::update(self, batch))
    }
    fn finish(&mut self) -> Answer {
        FunctionInstance::finish(self)
    }
}

impl<B: Backend> Backend for &mut B {
    fn call(&mut self, input: Batch) -> Answer {
        (**self).call(input)
    }
    fn start(&mut self) -> Result<(), CallError> {
        (**self).start()
    }
    fn update(&mut self, function: &str, message: &[u8], params: &[DataType]) -> Fed {
        (**self).update(function, message, params)
    }
    fn finish(&mut self) -> Answer {
        (**self).finish()
    }
}

impl Backend for PyCall<'_> {
    fn call(&mut self, input: Batch) -> Answer {
        PyCall::call(self, input)
    }
    fn start(&mut self) -> Result<(), CallError> {
        // A per-call function's instance runs the file while the rows come (a per-batch
        // function's is made at its first batch).
        PyCall::start(self)
    }
    fn update(&mut self, _: &str, message: &[u8], _: &[DataType]) -> Fed {
        // Every row is kept in the host until the end: decoded straight onto those kept.
        let rows = self.kept().keep(message)?;
        Ok((rows, Ok(self.nothing_yet())))
    }
    fn finish(&mut self) -> Answer {
        PyCall::finish(self)
    }
}

/// A request message decoded with the parameter types; `function` names the call in errors.
fn decode(function: &str, message: &[u8], params: &[DataType]) -> Result<Batch, CallError> {
    codec::decode(message, params).map_err(|error| CallError::bad_input(function, error))
}

/// A request message decoded into a batch for `update`, a per-call backend's that takes
/// batches: the rows it held, and `update`'s answer (or the function's error).
fn update_with(function: &str, message: &[u8], params: &[DataType], update: impl FnOnce(Batch) -> Answer) -> Fed {
    let batch = decode(function, message, params)?;
    let rows = batch.rows;
    Ok((rows, update(batch)?))
}

/// `batch` encoded into answer messages no larger than `MAX_RESPONSE_BYTES`, each handed to
/// `send`; `function` names the call in errors.
fn encode<S>(function: &str, batch: &Batch, send: &mut S) -> Result<(), CallError>
where
    S: FnMut(EncodedRows) -> Result<(), CallError>,
{
    codec::encode(batch, MAX_RESPONSE_BYTES, send).map_err(|error| match error {
        EncodeError::Emit(error) => error,
        EncodeError::OversizedRow(bytes) => CallError::OversizedRow { function: function.to_owned(), bytes },
    })
}
