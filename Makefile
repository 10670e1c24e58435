# Thin wrapper over cargo: CI and people run the same targets.
GUEST_TARGET := wasm32-wasip2
GUEST_OUT    := guests/target/$(GUEST_TARGET)/release
# The components `make run` serves (the test-only guests stay out of functions/).
EXAMPLES     := hello_world column_operations stats text python_example python_scripts
LISTEN       ?= 127.0.0.1:50051

# Guest toolchains other than Rust's live in guests/.tools, installed on first use.
TOOLS        := guests/.tools
PYTHON       ?= python3
COMPONENTIZE_PY := $(TOOLS)/venv/bin/componentize-py
WIT          := wit/sse.wit

.PHONY: all build guests rust-guests python-guests run test lint fmt bench clean

all: build guests

build:
	cargo build --release

# Builds every guest; copies the examples into functions/ by rename, so a running host never
# sees a half-written file.
guests: rust-guests python-guests
	mkdir -p functions
	for g in $(EXAMPLES); do cp $(GUEST_OUT)/$$g.wasm functions/.$$g.wasm.tmp && mv functions/.$$g.wasm.tmp functions/$$g.wasm; done

rust-guests:
	rustup target add $(GUEST_TARGET)
	cd guests && cargo build --release --target $(GUEST_TARGET)

# Python guests (componentize-py); rebuilt only when their sources or the WIT change.
python-guests: $(GUEST_OUT)/python_example.wasm $(GUEST_OUT)/python_scripts.wasm

$(COMPONENTIZE_PY):
	$(PYTHON) -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/pip install --quiet componentize-py==0.25.1

$(GUEST_OUT)/python_example.wasm: $(wildcard guests/python/example/*.py guests/python/sdk/*.py) $(WIT) | $(COMPONENTIZE_PY)
	mkdir -p $(GUEST_OUT)
	cd guests/python/example && $(abspath $(COMPONENTIZE_PY)) -d ../../../wit -w plugin componentize app -p . -p ../sdk -o $(abspath $@)

$(GUEST_OUT)/python_scripts.wasm: $(wildcard guests/python/script-engine/*.py) $(WIT) | $(COMPONENTIZE_PY)
	mkdir -p $(GUEST_OUT)
	cd guests/python/script-engine && $(abspath $(COMPONENTIZE_PY)) -d ../../../wit -w script-engine componentize app -p . -o $(abspath $@)

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
	rm -rf functions $(TOOLS)
