//! sse-wasm: a Qlik Server Side Extension host whose functions are sandboxed WebAssembly components.
//!
//! Qlik calls the host over gRPC (`qlik.sse.Connector`); the host serves the union of the functions
//! declared by every component in a folder, and runs each call in a fresh, limited instance.

pub mod bindings;
pub mod cache;
pub mod codec;
pub mod columns;
pub mod config;
pub mod engine;
pub mod error;
pub mod guest_log;
pub mod invoke;
pub mod module;
pub mod native;
pub mod pb;
pub mod registry;
pub mod reloader;
pub mod scaffold;
pub mod script;
pub mod server;
pub mod service;
pub mod toolkit;
pub mod wire_format;

pub use config::Config;
pub use engine::Engine;
pub use error::{CallError, LoadError};
pub use module::Module;
pub use registry::{Registry, SharedRegistry};
pub use server::serve;
