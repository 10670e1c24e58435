//! The guest author's toolkit: `sse-wasm inspect` and `sse-wasm call` load a module exactly as
//! the server does and run it under the same limits, so a module can be tried without Qlik;
//! `sse-wasm new` scaffolds a guest project; `sse-wasm datasci-snapshot` makes the data-science
//! engine's module; `sse-wasm models` lists and deletes kept models; `sse-wasm doctor` checks a
//! connection's certificates and settings the way the host and Qlik will read them.
//!
//! The bottom room of `app`, above `server`: it uses `functions`, `wasm`, `wire` and `model`.

mod call;
pub mod doctor;
mod inspect;
pub mod models;
pub mod new;
mod snapshot;

pub use call::{Input, call, csv_rows, replay_input};
pub use inspect::inspect;
pub use snapshot::datasci_snapshot;
