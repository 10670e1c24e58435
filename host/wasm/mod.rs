//! Everything WebAssembly, in rooms, each using only those before it in this list:
//!
//! | room | holds |
//! |---|---|
//! | [`cache`] | the compile cache: its key, its entries, where it lives |
//! | [`models`] | the model store: models a call saves for later calls of its Qlik app, and shared ones |
//! | [`runtime`] | the runtime (wasmtime engine, instance pool, epochs), the sandbox each call runs in, guests' output, the model store's WIT import |
//! | [`component`] | WIT bindings, a call's fresh instance, instances made ahead while an async thread is idle |
//! | [`datasci`] | the data-science engine, its `#!pandas` evaluations and the Python function files it runs |
//! | [`scripts`] | script engines (`ScriptEval`, `ScriptAggr`, …), components or the data-science engine |
//! | [`guest`] | loading any of them from a file: compile (or take from the cache), link, describe |
//!
//! Depends on `model` and `error` only. Generated WIT bindings stay inside this module: callers
//! see [`Guest`], [`FunctionInstance`] and [`ScriptEngine`], in the host's own types.

pub(crate) mod cache;
pub(crate) mod component;
pub(crate) mod datasci;
pub(crate) mod guest;
pub mod models;
pub(crate) mod runtime;
pub(crate) mod scripts;

pub use cache::{CacheKey, CacheLocation, CompileCache, Compiled, ContentHash, content_hash};
/// The async runtime's thread hooks that make instances ahead while idle (`app::run` installs them).
pub(crate) use component::ahead::{clear as forget_instances_made_ahead, idle as make_instances_ahead};
pub use component::instance::{Answer, FunctionInstance};
pub(crate) use datasci::pyfile::PyCall;
pub use datasci::pyfile::is_python_file;
pub(crate) use datasci::runtime::config as datasci_config;
pub use guest::Guest;
pub(crate) use guest::is_core_module;
pub use models::{AppModels, ModelLimits, ModelStore};
pub(crate) use runtime::clock::unreported;
pub use runtime::sandbox::{CallControl, CancelFlag};
pub use runtime::{
    DEFAULT_CONCURRENT_CALLS, DEFAULT_KEEP_RESIDENT_MIB, Limits, MAX_CONCURRENT_CALLS, Runtime, WORK_BESIDE_CALLS,
};
pub use scripts::{Evaluation, ScriptEngine};
