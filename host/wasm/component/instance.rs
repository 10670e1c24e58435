//! A fresh instance of a function component, in a store of its own, for one call: the calls
//! into the guest a call needs, in the host's types, each entered through the sandbox.

use std::sync::atomic::{AtomicU32, Ordering};

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre, ResourceAny, TypedFunc};

use crate::error::CallError;
use crate::model::Batch;

use super::bindings::qlik::sse::types as wit;
use super::bindings::{FUNCTIONS_EXPORT, PluginPre};
use crate::wasm::runtime::sandbox::{CallState, enter};

/// A guest's answer to one batch, as the canonical ABI lifts it.
type Lifted = (Result<wit::Batch, String>,);

/// Instantiations ahead in a row that may take longer than an inline call before a guest is no
/// longer made ahead.
const AHEAD_STRIKES: u32 = 8;

/// The linked component and where its `functions` exports are, found once at load: a call
/// looks up only the export it enters, not all of them.
pub(in crate::wasm) struct FunctionExports {
    pre: InstancePre<CallState>,
    indices: ExportIndices,
    /// Times in a row instantiating it ahead took too long; at [`AHEAD_STRIKES`] (or at once if
    /// it failed otherwise) its calls always instantiate their own.
    ahead_failures: AtomicU32,
}

/// Where the `functions` exports are in the component.
#[derive(Clone, Copy)]
pub(in crate::wasm) struct ExportIndices {
    call: ComponentExportIndex,
    constructor: ComponentExportIndex,
    update: ComponentExportIndex,
    finish: ComponentExportIndex,
}

impl FunctionExports {
    /// The exports of `pre`'s component, whose types `pre` has checked against the world.
    pub(in crate::wasm) fn new(pre: &PluginPre<CallState>) -> wasmtime::Result<Self> {
        let pre = pre.instance_pre().clone();
        let component = pre.component();
        let interface = component
            .get_export_index(None, FUNCTIONS_EXPORT)
            .ok_or_else(|| wasmtime::format_err!("no {FUNCTIONS_EXPORT} export"))?;
        let export = |name: &str| {
            component
                .get_export_index(Some(&interface), name)
                .ok_or_else(|| wasmtime::format_err!("{FUNCTIONS_EXPORT} exports no {name}"))
        };
        let indices = ExportIndices {
            call: export("call")?,
            constructor: export("[constructor]invocation")?,
            update: export("[method]invocation.update")?,
            finish: export("[method]invocation.finish")?,
        };
        Ok(Self { pre, indices, ahead_failures: AtomicU32::new(0) })
    }

    /// A fresh instance in `store`.
    pub(in crate::wasm) fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Instance> {
        self.pre.instantiate(store)
    }

    /// Where its exports are.
    pub(in crate::wasm) fn indices(&self) -> ExportIndices {
        self.indices
    }

    /// False once instantiating it ahead has failed for good.
    pub(in crate::wasm) fn may_be_made_ahead(&self) -> bool {
        self.ahead_failures.load(Ordering::Relaxed) < AHEAD_STRIKES
    }

    /// Records whether instantiating it ahead was done in time.
    pub(in crate::wasm) fn made_ahead(&self, in_time: bool) {
        if in_time {
            self.ahead_failures.store(0, Ordering::Relaxed);
        } else {
            self.ahead_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records that instantiating it ahead failed in a way that will not change.
    pub(in crate::wasm) fn refuse_ahead(&self) {
        self.ahead_failures.store(AHEAD_STRIKES, Ordering::Relaxed);
    }
}

/// One call's instance. Errors the guest's code answers with are `Err(String)` inside `Ok`; the
/// outer error is a fault (trap, deadline, memory, cancellation).
pub struct FunctionInstance {
    /// The function's name, for errors.
    name: String,
    index: u32,
    store: Store<CallState>,
    instance: Instance,
    exports: ExportIndices,
    invocation: Option<ResourceAny>,
}

/// What one entry into a function answers.
pub type Answer = Result<Result<Batch, String>, CallError>;

impl FunctionInstance {
    pub(in crate::wasm) fn new(
        name: String,
        index: u32,
        store: Store<CallState>,
        instance: Instance,
        exports: ExportIndices,
    ) -> Self {
        Self { name, index, store, instance, exports, invocation: None }
    }

    /// Ends the instance's call: on a runtime thread that drops stores while idle (where inline
    /// calls run), its store is dropped then; on any other (a call thread), at once.
    pub fn retire(self) {
        super::ahead::retire(self.store);
    }

    fn lower(&self, input: Batch) -> Result<wit::Batch, CallError> {
        wit::Batch::try_from(input).map_err(|reason| CallError::bad_input(&self.name, reason))
    }

    fn invocation(&self) -> Result<ResourceAny, CallError> {
        self.invocation.ok_or_else(|| CallError::Internal("per-call function used before it started".into()))
    }

    /// The export at `index`, typed: its type is checked against `P` and `R` (the world was
    /// checked at load, so this fails only on a host bug).
    fn func<P, R>(&mut self, index: ComponentExportIndex) -> Result<TypedFunc<P, R>, CallError>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
    {
        self.instance
            .get_typed_func::<P, R>(&mut self.store, index)
            .map_err(|e| CallError::Internal(format!("{}: the guest's export does not fit: {e}", self.name)))
    }

    /// The guest's answer to one entry: a failure after a refusal of the model store fails the
    /// call with the refusal's own code.
    fn answer(&mut self, answer: Result<wit::Batch, String>) -> Answer {
        match (answer, self.store.data_mut().models.take_refusal()) {
            (Err(_), Some(error)) => Err(CallError::Models { function: self.name.clone(), error }),
            (answer, _) => Ok(answer.map(Batch::from)),
        }
    }

    /// A per-batch function's answer to one batch.
    pub fn call(&mut self, input: Batch) -> Answer {
        let (input, index) = (self.lower(input)?, self.index);
        let call = self.func::<(u32, &wit::Batch), Lifted>(self.exports.call)?;
        self.store.data_mut().models.forget_refusal();
        let (answer,) = enter(&mut self.store, &self.name, |s| call.call(s, (index, &input)))?;
        self.answer(answer)
    }

    /// Starts a per-call function.
    pub fn start(&mut self) -> Result<(), CallError> {
        let index = self.index;
        let constructor = self.func::<(u32,), (ResourceAny,)>(self.exports.constructor)?;
        let (invocation,) = enter(&mut self.store, &self.name, |s| constructor.call(s, (index,)))?;
        self.invocation = Some(invocation);
        Ok(())
    }

    /// Feeds a per-call function one batch.
    pub fn update(&mut self, input: Batch) -> Answer {
        let (input, invocation) = (self.lower(input)?, self.invocation()?);
        let update = self.func::<(ResourceAny, &wit::Batch), Lifted>(self.exports.update)?;
        self.store.data_mut().models.forget_refusal();
        let (answer,) = enter(&mut self.store, &self.name, |s| update.call(s, (invocation, &input)))?;
        self.answer(answer)
    }

    /// Ends a per-call function: its remaining rows.
    pub fn finish(&mut self) -> Answer {
        let invocation = self.invocation()?;
        let finish = self.func::<(ResourceAny,), Lifted>(self.exports.finish)?;
        self.store.data_mut().models.forget_refusal();
        let (answer,) = enter(&mut self.store, &self.name, |s| finish.call(s, (invocation,)))?;
        // The instance is thrown away with the store, and the invocation with it; dropping it
        // explicitly lets a guest's destructor run while the call is still accounted for.
        enter(&mut self.store, &self.name, |s| invocation.resource_drop(s))?;
        self.invocation = None;
        self.answer(answer)
    }
}
