//! Command-line and environment configuration, validated once at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Raw flags, as typed by the administrator (every flag also reads an `SSE_WASM_*` variable).
#[derive(Debug, Parser)]
#[command(name = "sse-wasm", version, about = "Serves WebAssembly functions to Qlik as a Server Side Extension")]
pub struct Flags {
    /// Address to listen on. Qlik's settings.ini names it as `SSEPlugin=<Name>,<host>:<port>`.
    #[arg(long, env = "SSE_WASM_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Folder whose `*.wasm` components are served.
    #[arg(long, env = "SSE_WASM_FUNCTIONS_DIR", default_value = "functions")]
    pub functions_dir: PathBuf,

    /// CPU time one call may take before it is interrupted, in seconds.
    #[arg(long, env = "SSE_WASM_CALL_TIMEOUT", default_value_t = 30.0)]
    pub call_timeout: f64,

    /// Linear memory one guest instance may grow to, in MiB.
    #[arg(long, env = "SSE_WASM_MAX_MEMORY", default_value_t = 512)]
    pub max_memory: usize,

    /// Folder of compiled components, so restarts and reloads of known files skip compiling.
    /// Default: `.cache` inside the functions folder.
    #[arg(long, env = "SSE_WASM_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile every component at every load instead of using the compile cache.
    #[arg(long, env = "SSE_WASM_NO_COMPILE_CACHE")]
    pub no_compile_cache: bool,

    /// Do not watch the functions folder: serve what is there at start-up until restarted.
    #[arg(long, env = "SSE_WASM_NO_WATCH")]
    pub no_watch: bool,

    /// Largest request message accepted, in MiB (Qlik's own limit for answers is 4 MiB).
    #[arg(long, env = "SSE_WASM_MAX_MESSAGE", default_value_t = 64)]
    pub max_message: usize,
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the server listens.
    pub listen: SocketAddr,
    /// The folder of components.
    pub functions_dir: PathBuf,
    /// The compile cache's folder; `None` compiles at every load.
    pub cache_dir: Option<PathBuf>,
    /// Whether the functions folder is watched for changes.
    pub watch: bool,
    /// The limits every guest runs under.
    pub limits: Limits,
    /// Largest inbound message, in bytes.
    pub max_message_bytes: usize,
}

/// The limits every guest call runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// CPU deadline of one call (and of one `describe`).
    pub call_timeout: Duration,
    /// Linear-memory cap of one instance, in bytes.
    pub max_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { call_timeout: Duration::from_secs(30), max_memory_bytes: 512 << 20 }
    }
}

impl Config {
    /// Checks the flags and turns them into a configuration.
    pub fn from_flags(flags: Flags) -> anyhow::Result<Self> {
        anyhow::ensure!(
            flags.call_timeout.is_finite() && flags.call_timeout > 0.0,
            "--call-timeout must be a positive number of seconds, not {}",
            flags.call_timeout
        );
        anyhow::ensure!(flags.max_memory >= 1, "--max-memory must be at least 1 MiB");
        anyhow::ensure!(flags.max_message >= 16, "--max-message must be at least 16 MiB (Qlik sends large bundles)");
        Ok(Self {
            listen: flags.listen,
            cache_dir: (!flags.no_compile_cache)
                .then(|| flags.cache_dir.unwrap_or_else(|| flags.functions_dir.join(".cache"))),
            watch: !flags.no_watch,
            functions_dir: flags.functions_dir,
            limits: Limits {
                call_timeout: Duration::from_secs_f64(flags.call_timeout),
                max_memory_bytes: flags.max_memory.saturating_mul(1 << 20),
            },
            max_message_bytes: flags.max_message.saturating_mul(1 << 20),
        })
    }
}
