//! The guest author's toolkit: `sse-wasm inspect` and `sse-wasm call` load a module exactly as
//! the server does and run it under the same limits, so a module can be tried without Qlik;
//! `sse-wasm new` scaffolds a guest project.
//!
//! A top layer beside `server`: it uses `call`, `registry`, `wasm`, `wire` and `model`.

mod call;
mod inspect;
pub mod new;

pub use call::{call, csv_rows};
pub use inspect::inspect;
