//! The host's own types: batches of typed columns, function declarations and their rules, and
//! the script of an `EvaluateScript` call.
//!
//! Everything else speaks in these types. This layer depends on nothing else of the crate: no
//! generated protobuf or WIT types, no wasmtime, no tonic.

pub mod batch;
pub mod function;
pub mod script;

pub use batch::{Batch, Column, DataType, Strings};
pub use function::{FunctionDef, FunctionType, MAX_FUNCTIONS, Mode, TableDef};
pub use script::{Script, ScriptAnswer, ScriptField, ScriptTable};
