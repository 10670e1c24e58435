//! The backend of functions written in Rust inside the host (feature `native`): no instance, no
//! store, the same protocol as a Wasm function.

use crate::error::CallError;
use crate::functions::native::{NativeFunction, NativeInvocation};
use crate::model::{Batch, DataType};

use super::{Answer, Backend, Fed};

/// One call of a native function.
pub(super) struct Native<'a> {
    function: &'a dyn NativeFunction,
    invocation: Option<Box<dyn NativeInvocation>>,
}

impl<'a> Native<'a> {
    pub(super) fn new(function: &'a dyn NativeFunction) -> Self {
        Self { function, invocation: None }
    }

    fn invocation(&mut self) -> Result<&mut Box<dyn NativeInvocation>, CallError> {
        self.invocation.as_mut().ok_or_else(|| CallError::Internal("per-call function used before it started".into()))
    }
}

impl Backend for Native<'_> {
    fn call(&mut self, input: Batch) -> Answer {
        Ok(self.function.call(input))
    }
    fn start(&mut self) -> Result<(), CallError> {
        self.invocation = Some(self.function.invocation());
        Ok(())
    }
    fn update(&mut self, function: &str, message: &[u8], params: &[DataType]) -> Fed {
        let invocation = self.invocation()?;
        super::update_with(function, message, params, |batch| Ok(invocation.update(batch)))
    }
    fn finish(&mut self) -> Answer {
        Ok(self.invocation()?.finish())
    }
}
