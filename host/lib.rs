//! sse-wasm: a Qlik Server Side Extension host whose functions are sandboxed WebAssembly components.
//!
//! Qlik calls the host over gRPC (`qlik.sse.Connector`); the host serves the union of the functions
//! declared by every component in a folder, and runs each call in a fresh, limited instance.
//!
//! The modules, from the bottom up (each uses only those listed before it; `ARCHITECTURE.md`
//! draws a call's path and a reload):
//!
//! | module | owns |
//! |---|---|
//! | [`model`] | batches of typed columns, function declarations and their rules, scripts |
//! | [`wire`] | generated protobuf, its conversions to the model, the wire-format rules, the row codec |
//! | [`error`] | why a load or a call failed, and the one mapping to gRPC statuses |
//! | [`metrics`] | what the host counts for operators (Prometheus) |
//! | [`log`] | the log's buffered writer: a slow destination never holds up a call |
//! | [`wasm`] | wasmtime, the sandbox, the compile cache, loading guests, fresh instances, script engines |
//! | `native` | functions written in Rust inside the host (feature `native`: tests and benchmarks) |
//! | [`registry`] | the snapshot of served functions and their stable ids |
//! | [`call`] | the protocol of a function call and of a script evaluation, whatever runs the code |
//! | [`reload`] | watching the functions folder: settle, compile, swap the registry |
//! | [`server`] | the gRPC server: the connector, the async/blocking bridge, TLS, health |
//! | [`tools`] | the guest author's `inspect`, `call` and `new` |
//! | [`cli`] | flags and environment into a validated configuration |
//! | [`serve`] | serving the folder until told to stop, and where the log goes |
//! | [`service`] | the Windows service: install, uninstall, run |

pub mod call;
pub mod cli;
pub mod error;
pub mod log;
pub mod metrics;
pub mod model;
#[cfg(feature = "native")]
pub mod native;
pub mod registry;
pub mod reload;
pub mod serve;
pub mod server;
pub mod service;
pub mod tools;
pub mod wasm;
pub mod wire;

pub use error::{CallError, LoadError};
pub use registry::{Registry, SharedRegistry};
pub use server::serve;
pub use wasm::Runtime;
pub use wire::pb;
