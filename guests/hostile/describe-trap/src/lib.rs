//! A hostile component for the host's tests: it panics (traps) in `describe`.

fn explode() -> Vec<sse_guest::Function> {
    panic!("describe explodes")
}

sse_guest::export_functions!(all: explode());
