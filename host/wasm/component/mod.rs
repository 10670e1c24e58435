//! Components that export functions: the bindings generated from the WIT world, a call's fresh
//! instance, and the instances made ahead while an async thread is idle.
//!
//! Uses `core` only; the generated bindings stay inside `wasm`.

pub(crate) mod ahead;
pub(crate) mod bindings;
pub(crate) mod instance;
