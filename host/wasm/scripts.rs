//! Script engines: components exporting `qlik:sse/scripts`, which evaluate the scripts of Qlik's
//! script functions (`EvaluateScript`) in their language.
//!
//! Like a function call, every evaluation runs in a fresh instance of the engine, in a store of
//! its own: nothing one script does — data it keeps, modules or builtins it changes, output it
//! prints — is seen by any later script, whichever app or user sends it. Instantiating from the
//! pre-linked component is cheap (the interpreter's start-up was done when the component was
//! built, and its memory image is mapped copy-on-write), and each engine keeps a few instances
//! made ahead of time by a thread of its own, which also frees the stores of finished calls.
//!
//! The data-science engine (`datasci`), a core module rather than a component, is a script
//! engine too: [`ScriptEngine`] holds either kind and an [`Evaluation`] runs on either.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::{InstancePre, ResourceAny};

use crate::error::{CallError, LoadError};
use crate::model::script::{LABEL, check_language};
use crate::model::{Batch, Script, ScriptAnswer};

use super::component::bindings::qlik::sse::types as wit;
use super::component::bindings::script_engine::exports::qlik::sse::scripts::Script as ScriptHeader;
use super::component::bindings::script_engine::{ScriptEngine as Bindings, ScriptEnginePre};
use super::datasci::engine::{DataSci, DataSciEvaluation};
use super::runtime::Runtime;
use super::runtime::sandbox::{CallState, CancelFlag, enter};
use super::runtime::spares::Spares;

/// A fresh instance of a script engine in its own store, never used by any call.
struct Fresh {
    store: Store<CallState>,
    bindings: Bindings,
}

/// A loaded script engine: its language, and what every evaluation instantiates afresh.
pub struct ScriptEngine {
    /// The language it runs, lower case.
    pub language: String,
    kind: Kind,
}

/// The two kinds of script engine.
enum Kind {
    /// A component exporting `scripts`: the pre-linked component and a few instances made ahead
    /// of time.
    Component(Arc<Shared>),
    /// The data-science engine.
    DataSci(Arc<DataSci>),
}

/// What the engine and its preparing thread share.
struct Shared {
    runtime: Runtime,
    module: Arc<str>,
    pre: ScriptEnginePre<CallState>,
    /// Instances made ahead of time, never used, and stores of finished calls, freed by the
    /// preparing thread rather than on a call's path.
    spares: Spares<Fresh, Store<CallState>>,
    /// Holds the preparing thread still, for tests of a thread that gets no CPU.
    #[cfg(feature = "native")]
    hold: Hold,
}

/// A request that the preparing thread stand still, and its answer.
#[cfg(feature = "native")]
#[derive(Default)]
struct Hold {
    /// Set to ask the thread to stand still; cleared to let it go on.
    wanted: std::sync::atomic::AtomicBool,
    /// True while the thread stands still.
    held: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Shared {
    fn instantiate(&self, cancel: Option<CancelFlag>) -> Result<Fresh, CallError> {
        let mut store = self.runtime.store(&self.module, cancel);
        let bindings = enter(&mut store, LABEL, |s| self.pre.instantiate(s))?;
        Ok(Fresh { store, bindings })
    }
}

impl ScriptEngine {
    /// Links the engine exported by a component and asks a first instance for its language.
    pub(crate) fn new(
        runtime: &Runtime,
        module: &Arc<str>,
        pre: InstancePre<CallState>,
        load_error: impl Fn(String) -> LoadError,
    ) -> Result<Self, LoadError> {
        let pre = ScriptEnginePre::new(pre).map_err(|e| load_error(format!("{e:#}")))?;
        let mut store = runtime.store(module, None);
        let what = format!("{module} (language)");
        let bindings = enter(&mut store, &what, |s| pre.instantiate(s)).map_err(|e| load_error(e.to_string()))?;
        let language = enter(&mut store, &what, |s| bindings.qlik_sse_scripts().call_language(s))
            .map_err(|e| load_error(e.to_string()))?;
        check_language(&language).map_err(&load_error)?;
        let shared = Arc::new(Shared {
            runtime: runtime.clone(),
            module: module.clone(),
            pre,
            spares: Spares::default(),
            #[cfg(feature = "native")]
            hold: Hold::default(),
        });
        let weak = Arc::downgrade(&shared);
        // The preparing thread ends once the engine is dropped (a reload replaced it).
        std::thread::Builder::new()
            .name(format!("sse-wasm-prepare-{language}"))
            .spawn(move || prepare(&weak))
            .map_err(|e| load_error(format!("cannot start its preparing thread: {e}")))?;
        Ok(Self { language, kind: Kind::Component(shared) })
    }

    /// The data-science engine `engine`, which runs `language`.
    pub(crate) fn datasci(language: String, engine: DataSci) -> Self {
        Self { language, kind: Kind::DataSci(Arc::new(engine)) }
    }

    /// The data-science engine, if this is it (it also runs Python function files).
    pub(crate) fn datasci_engine(&self) -> Option<&Arc<DataSci>> {
        match &self.kind {
            Kind::DataSci(engine) => Some(engine),
            Kind::Component(_) => None,
        }
    }

    /// Stops (`true`) or restarts (`false`) this engine's preparing thread, as if the machine gave
    /// it no CPU: no instance is made ahead and no finished call's store is freed meanwhile.
    /// Returns once the thread stands still. For tests.
    #[cfg(feature = "native")]
    pub fn hold_preparing(&self, held: bool) {
        let Kind::Component(shared) = &self.kind else { return };
        let hold = &shared.hold;
        hold.wanted.store(held, std::sync::atomic::Ordering::SeqCst);
        // Wakes the thread from its wait for work.
        shared.spares.wake();
        hold.changed.notify_all();
        if held {
            let standing = hold.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            drop(hold.changed.wait_while(standing, |standing| !*standing));
        }
    }

    /// What kind of module it is, for people: the WIT world it fits, or the data-science engine.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Component(_) => "fits qlik:sse/script-engine@0.1.0",
            Kind::DataSci(_) => "the data-science engine (a module of `sse-wasm datasci-snapshot`)",
        }
    }

    /// Starts evaluating `script` in a fresh instance that `cancel` stops.
    pub fn evaluate(&self, script: &Script, cancel: CancelFlag) -> Result<Evaluation<'_>, CallError> {
        match &self.kind {
            Kind::Component(shared) => Ok(Evaluation::Component(ComponentEvaluation::start(shared, script, cancel)?)),
            Kind::DataSci(engine) => Ok(Evaluation::DataSci(engine.evaluate(script, cancel))),
        }
    }
}

/// One evaluation of a script, by either kind of engine.
pub enum Evaluation<'a> {
    /// By a component.
    Component(ComponentEvaluation<'a>),
    /// By the data-science engine.
    DataSci(DataSciEvaluation<'a>),
}

impl Evaluation<'_> {
    /// No more rows: the script's answer.
    pub fn finish(self) -> Result<ScriptAnswer, CallError> {
        match self {
            Self::Component(evaluation) => evaluation.finish().map(|batch| ScriptAnswer { batch, table: None }),
            Self::DataSci(evaluation) => evaluation.finish(),
        }
    }
}

impl<'a> ComponentEvaluation<'a> {
    /// Starts evaluating `script` in a fresh instance of the component that `cancel` stops.
    fn start(shared: &'a Shared, script: &Script, cancel: CancelFlag) -> Result<Self, CallError> {
        // A fresh instance in a store of its own: its own memory, CPU budget and output budget.
        let Fresh { mut store, bindings } = shared.fresh(cancel)?;
        let header = ScriptHeader {
            text: script.text.clone(),
            params: script
                .params
                .iter()
                .map(|(name, t)| wit::Param { name: name.clone(), data_type: (*t).into() })
                .collect(),
            function_type: script.function_type.into(),
            return_type: script.return_type.into(),
        };
        let started =
            enter(&mut store, LABEL, |s| bindings.qlik_sse_scripts().evaluation().call_constructor(s, &header));
        match started {
            Ok(handle) => Ok(Self { engine: shared, store: Some(store), bindings, handle }),
            Err(error) => {
                shared.discard(store);
                Err(error)
            }
        }
    }
}

impl Shared {
    /// A fresh instance for one call: one made ahead of time, or one made now.
    fn fresh(&self, cancel: CancelFlag) -> Result<Fresh, CallError> {
        match self.spares.take() {
            Some(mut fresh) => {
                fresh.store.data_mut().arm(cancel);
                Ok(fresh)
            }
            None => self.instantiate(Some(cancel)),
        }
    }

    /// Hands the store of a finished call to the preparing thread to free (or frees it now).
    fn discard(&self, store: Store<CallState>) {
        self.spares.discard(store);
    }
}

impl Shared {
    /// True when a test asked the preparing thread to stand still.
    fn held(&self) -> bool {
        #[cfg(feature = "native")]
        return self.hold.wanted.load(std::sync::atomic::Ordering::SeqCst);
        #[cfg(not(feature = "native"))]
        false
    }
}

/// Keeps a few fresh instances made while the engine lives.
fn prepare(shared: &std::sync::Weak<Shared>) {
    loop {
        let Some(shared) = shared.upgrade() else { return };
        #[cfg(feature = "native")]
        {
            let hold = &shared.hold;
            if hold.wanted.load(std::sync::atomic::Ordering::SeqCst) {
                let mut standing = hold.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                *standing = true;
                hold.changed.notify_all();
                standing = hold
                    .changed
                    .wait_timeout_while(standing, Duration::from_secs(1), |_| {
                        hold.wanted.load(std::sync::atomic::Ordering::SeqCst)
                    })
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
                *standing = false;
                continue;
            }
        }
        if shared.spares.wait(|| shared.held()) {
            match shared.instantiate(None) {
                Ok(fresh) => shared.spares.add(fresh),
                Err(error) => {
                    // Calls instantiate for themselves meanwhile, and report what fails.
                    tracing::warn!("{}: cannot prepare a script engine instance: {error}", shared.module);
                    drop(shared);
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// One evaluation of a script in a fresh instance of a component; its store is handed back for
/// freeing when it ends, however it ends.
pub struct ComponentEvaluation<'a> {
    engine: &'a Shared,
    store: Option<Store<CallState>>,
    bindings: Bindings,
    handle: ResourceAny,
}

impl ComponentEvaluation<'_> {
    /// Runs `f` in the evaluation's instance; an error of the script, or one the sandbox caught.
    fn enter<R>(
        &mut self,
        f: impl FnOnce(&Bindings, ResourceAny, &mut Store<CallState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallError> {
        let Some(store) = self.store.as_mut() else {
            return Err(CallError::Internal("a script evaluation used after it ended".into()));
        };
        let (bindings, handle) = (&self.bindings, self.handle);
        let outcome = enter(store, LABEL, |s| f(bindings, handle, s)).and_then(|answer| answer.map_err(script_error));
        // A script that ran into the memory cap failed for that, whatever it said.
        outcome.map_err(|error| store.data().memory_exhausted(LABEL).unwrap_or(error))
    }

    /// Feeds the script one batch of rows.
    pub fn update(&mut self, input: Batch) -> Result<(), CallError> {
        let input = wit::Batch::try_from(input).map_err(|reason| CallError::bad_input(LABEL, reason))?;
        self.enter(|bindings, handle, s| bindings.qlik_sse_scripts().evaluation().call_update(s, handle, &input))
    }

    /// No more rows: the script's answer.
    pub fn finish(mut self) -> Result<Batch, CallError> {
        self.enter(|bindings, handle, s| bindings.qlik_sse_scripts().evaluation().call_finish(s, handle))
            .map(Batch::from)
    }
}

impl Drop for ComponentEvaluation<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.engine.discard(store);
        }
    }
}

/// An error the script itself raised.
fn script_error(message: String) -> CallError {
    CallError::Guest { function: LABEL.to_owned(), message }
}
