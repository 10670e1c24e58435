//! A hostile component for the host's tests: it declares 10,000 functions.

fn identity(x: f64) -> f64 {
    x
}

sse_guest::export_functions!(all: (0..10_000).map(|i| sse_guest::Function::scalar(&format!("F{i}"), identity)).collect());
