//! Functions implemented in Rust inside the host (feature `native`, off in the product), served
//! through exactly the same gRPC path as Wasm functions. They exist to measure that path's
//! ceiling (the benchmark compares Wasm against them), for tests that need a function doing what
//! no guest may, and for embedders who link sse-wasm as a library.

use crate::model::{Batch, FunctionDef};

/// A function compiled into the host.
pub trait NativeFunction: Send + Sync + 'static {
    /// Its declaration, with the same rules as a guest's.
    fn def(&self) -> &FunctionDef;

    /// Answers one batch of a per-batch function (one row per input row).
    fn call(&self, input: Batch) -> Result<Batch, String> {
        let _ = input;
        Err(format!("{} is not a per-batch function", self.def().name))
    }

    /// Starts one call of a per-call function.
    fn invocation(&self) -> Box<dyn NativeInvocation> {
        Box::new(NotPerCall(self.def().name.clone()))
    }
}

/// The state of one call to a per-call native function.
pub trait NativeInvocation: Send {
    /// Takes the next batch; may answer rows at once.
    fn update(&mut self, input: Batch) -> Result<Batch, String>;
    /// No more input: answers the remaining rows.
    fn finish(&mut self) -> Result<Batch, String>;
}

struct NotPerCall(String);

impl NativeInvocation for NotPerCall {
    fn update(&mut self, _: Batch) -> Result<Batch, String> {
        Err(format!("{} is not a per-call function", self.0))
    }
    fn finish(&mut self) -> Result<Batch, String> {
        self.update(Batch::default())
    }
}
