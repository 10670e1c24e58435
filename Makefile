# Thin wrapper over cargo: CI and people run the same targets.
GUEST_TARGET := wasm32-wasip2
GUEST_OUT    := guests/target/$(GUEST_TARGET)/release
# The components `make run` serves (the test-only guests stay out of functions/).
EXAMPLES     := hello_world column_operations stats text
LISTEN       ?= 127.0.0.1:50051

.PHONY: all build guests run test lint fmt bench clean

all: build guests

build:
	cargo build --release

# Builds every guest; copies the examples into functions/ by rename, so a running host never
# sees a half-written file.
guests:
	rustup target add $(GUEST_TARGET)
	cd guests && cargo build --release --target $(GUEST_TARGET)
	mkdir -p functions
	for g in $(EXAMPLES); do cp $(GUEST_OUT)/$$g.wasm functions/.$$g.wasm.tmp && mv functions/.$$g.wasm.tmp functions/$$g.wasm; done

run: guests build
	./target/release/sse-wasm --listen $(LISTEN) --functions-dir functions

test: guests
	cargo test
	cd guests && cargo test

# Sections and sizes: `make bench BENCH_ARGS="reload --quick"`.
bench: guests
	cargo bench --bench bench -- $(BENCH_ARGS)

lint:
	cargo fmt --all -- --check
	cd guests && cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cd guests && cargo clippy --target $(GUEST_TARGET) -- -D warnings

fmt:
	cargo fmt --all
	cd guests && cargo fmt --all

clean:
	cargo clean
	cd guests && cargo clean
	rm -rf functions
