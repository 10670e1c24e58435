//! Everything WebAssembly: the runtime (wasmtime engine, instance pool, epochs), the sandbox each
//! call runs in, guests' output, the compile cache, loading a component (compile, pre-instantiate,
//! describe), a call's fresh instance (made ahead while an async thread is idle), script engines,
//! the data-science engine and the Python function files it runs.
//!
//! Depends on `model` and `error` only. Generated WIT bindings stay inside this module: callers
//! see [`Guest`], [`FunctionInstance`] and [`ScriptEngine`], in the host's own types.

#[cfg(windows)]
pub(crate) mod access;
pub(crate) mod ahead;
pub(crate) mod bindings;
pub(crate) mod cache;
pub(crate) mod datasci;
pub(crate) mod datasci_runtime;
pub(crate) mod guest;
pub(crate) mod guest_log;
pub(crate) mod instance;
pub(crate) mod pyfile;
pub(crate) mod runtime;
pub(crate) mod sandbox;
pub(crate) mod script_engine;
pub(crate) mod snapshot;

pub use cache::{CacheKey, CacheLocation, CompileCache, Compiled, ContentHash, content_hash};
pub use guest::Guest;
pub use instance::FunctionInstance;
pub use pyfile::is_python_file;
pub(crate) use runtime::runtime_threads;
pub use runtime::{
    DEFAULT_CONCURRENT_CALLS, DEFAULT_MAX_INPUT_MIB, LOAD_PARALLELISM, Limits, MAX_CONCURRENT_CALLS, Runtime,
};
pub(crate) use sandbox::unreported;
pub use sandbox::{CallControl, CancelFlag};
pub use script_engine::ScriptEngine;
pub use snapshot::datasci_snapshot;
