//! The guest author's toolkit: `sse-wasm inspect` and `sse-wasm call` load a module exactly as
//! the server does and run it under the same limits, so a module can be tried without Qlik;
//! `sse-wasm new` scaffolds a guest project.
//!
//! A top layer beside `server`: it uses `call`, `registry`, `wasm`, `wire` and `model`.

mod call;
mod inspect;
pub mod new;

use std::path::Path;

use crate::wasm::{CacheLocation, Guest, Runtime};

pub use call::{call, csv_rows};
pub use inspect::inspect;

/// Loads `path` as the server would, with the compile cache at `cache` if given.
pub(crate) fn load(runtime: &Runtime, cache: Option<&CacheLocation>, path: &Path) -> anyhow::Result<Guest> {
    let cache = cache.and_then(|c| c.open(runtime.wasmtime()));
    Ok(Guest::load(runtime, cache.as_ref(), path)?.0)
}
