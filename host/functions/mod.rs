//! The functions being served, in rooms, each using only those before it in this list:
//!
//! | room | holds |
//! |---|---|
//! | `native` | functions written in Rust inside the host (feature `native`: tests and benchmarks) |
//! | [`registry`] | the snapshot of served functions and their stable ids |
//! | [`call`] | the protocol of a function call and of a script evaluation, whatever runs the code |
//! | [`reload`] | watching the functions folder: settle, compile, swap the registry |
//!
//! Uses `wasm` for the code it runs and `observe` for what it counts; the server above it serves
//! the registry's snapshot and hands each request to [`call`].

pub mod call;
#[cfg(feature = "native")]
pub mod native;
pub mod registry;
pub mod reload;
