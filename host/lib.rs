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
//! | [`observe`] | what the host counts for operators (Prometheus), and its log's buffered writer |
//! | [`wasm`] | wasmtime, the sandbox, the compile cache, loading guests, fresh instances, script engines, the model store |
//! | [`functions`] | the served functions and their ids, the protocol of a call, reloading the folder |
//! | [`server`] | the gRPC server: the connector, the async/blocking bridge, TLS, health |
//! | [`app`] | the author's tools, flags into a configuration, serving until told to stop, the Windows service |

pub mod app;
pub mod error;
pub mod functions;
pub mod model;
pub mod observe;
pub mod server;
pub mod wasm;
pub mod wire;

pub use error::{CallError, LoadError};
pub use functions::registry::{Registry, SharedRegistry};
pub use server::serve;
pub use wasm::Runtime;
pub use wire::pb;
