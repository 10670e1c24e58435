//! A fresh instance of a function component, in a store of its own, for one call: the calls
//! into the guest a call needs, in the host's types, each entered through the sandbox.

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::error::CallError;
use crate::model::Batch;

use super::bindings::Plugin;
use super::bindings::qlik::sse::types as wit;
use super::sandbox::{CallState, enter};

/// One call's instance. Errors the guest's code answers with are `Err(String)` inside `Ok`; the
/// outer error is a fault (trap, deadline, memory, cancellation).
pub struct FunctionInstance {
    /// The function's name, for errors.
    name: String,
    index: u32,
    store: Store<CallState>,
    plugin: Plugin,
    invocation: Option<ResourceAny>,
}

/// What one entry into a function answers.
pub type Answer = Result<Result<Batch, String>, CallError>;

impl FunctionInstance {
    pub(super) fn new(name: String, index: u32, store: Store<CallState>, plugin: Plugin) -> Self {
        Self { name, index, store, plugin, invocation: None }
    }

    fn lower(&self, input: Batch) -> Result<wit::Batch, CallError> {
        wit::Batch::try_from(input).map_err(|reason| CallError::BadInput { function: self.name.clone(), reason })
    }

    fn invocation(&self) -> Result<ResourceAny, CallError> {
        self.invocation.ok_or_else(|| CallError::Internal("per-call function used before it started".into()))
    }

    /// A per-batch function's answer to one batch.
    pub fn call(&mut self, input: Batch) -> Answer {
        let (input, plugin, index) = (self.lower(input)?, &self.plugin, self.index);
        let answer = enter(&mut self.store, &self.name, |s| plugin.qlik_sse_functions().call_call(s, index, &input))?;
        Ok(answer.map(Batch::from))
    }

    /// Starts a per-call function.
    pub fn start(&mut self) -> Result<(), CallError> {
        let (plugin, index) = (&self.plugin, self.index);
        let invocation = enter(&mut self.store, &self.name, |s| {
            plugin.qlik_sse_functions().invocation().call_constructor(s, index)
        })?;
        self.invocation = Some(invocation);
        Ok(())
    }

    /// Feeds a per-call function one batch.
    pub fn update(&mut self, input: Batch) -> Answer {
        let (input, plugin, invocation) = (self.lower(input)?, &self.plugin, self.invocation()?);
        let answer = enter(&mut self.store, &self.name, |s| {
            plugin.qlik_sse_functions().invocation().call_update(s, invocation, &input)
        })?;
        Ok(answer.map(Batch::from))
    }

    /// Ends a per-call function: its remaining rows.
    pub fn finish(&mut self) -> Answer {
        let (plugin, invocation) = (&self.plugin, self.invocation()?);
        let answer = enter(&mut self.store, &self.name, |s| {
            plugin.qlik_sse_functions().invocation().call_finish(s, invocation)
        })?;
        // The instance is thrown away with the store, and the invocation with it; dropping it
        // explicitly lets a guest's destructor run while the call is still accounted for.
        enter(&mut self.store, &self.name, |s| invocation.resource_drop(s))?;
        self.invocation = None;
        Ok(answer.map(Batch::from))
    }
}
