//! A hostile component for the host's tests: it panics (traps) in `describe`, with a message
//! in a script other than English whose 512th byte falls inside a character.

fn explode() -> Vec<sse_guest::Function> {
    panic!("describe explodes: {}", "é".repeat(400))
}

sse_guest::export_functions!(all: explode());
