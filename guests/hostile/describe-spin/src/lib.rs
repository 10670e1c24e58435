//! A hostile component for the host's tests: `describe` never returns.

fn forever() -> Vec<sse_guest::Function> {
    let mut i = 0u64;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

sse_guest::export_functions!(all: forever());
