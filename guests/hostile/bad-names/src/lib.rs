//! A hostile component for the host's tests: a function name Qlik cannot call.

fn identity(x: f64) -> f64 {
    x
}

sse_guest::export_functions![sse_guest::Function::scalar("Bad Name; DROP TABLE", identity)];
