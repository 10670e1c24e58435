//! Serving the functions folder until told to stop: what `sse-wasm` does without a subcommand,
//! and what the Windows service runs. Also where the host's log goes.

use std::future::Future;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::app::cli::Config;
use crate::functions::reload::Reloader;
use crate::observe::log::LogGuard;
use crate::server::{MetricsSource, Server};
use crate::wasm::{Runtime, WORK_BESIDE_CALLS, forget_instances_made_ahead, make_instances_ahead};

/// Blocking threads for file reads (the reloader's) beside calls and loads.
const FILE_THREADS: usize = 4;

/// Sends the log to standard error, or appended to `file`, through a buffer a thread writes out
/// ([`crate::observe::log`]); `RUST_LOG` overrides `default_level`. Keep the guard until the process
/// ends: dropping it writes the last lines.
pub fn init_logging(default_level: &str, file: Option<&Path>) -> anyhow::Result<LogGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let logging = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot make the log folder {}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open the log file {}", path.display()))?;
            let (log, guard) = crate::observe::log::buffered(file).context("cannot start the log's writer thread")?;
            logging.with_writer(log).with_ansi(false).init();
            Ok(guard)
        }
        // Colours only for a person at a terminal, and not with NO_COLOR set: a file, a pipe or a
        // service manager capturing stderr gets plain lines.
        None => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let (log, guard) =
                crate::observe::log::buffered(std::io::stderr()).context("cannot start the log's writer thread")?;
            logging.with_writer(log).with_ansi(colour).init();
            Ok(guard)
        }
    }
}

/// Serves `config`'s functions folder until `shutdown` resolves, then drains calls in flight.
pub fn serve_until(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    // Every call runs on a blocking thread while it holds a call slot, and loads take a few
    // more: the pool is sized to exactly that, so a slot always finds its thread and no more
    // threads than slots are ever made.
    let threads = config.serve.max_concurrent_calls + WORK_BESIDE_CALLS + FILE_THREADS;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(threads)
        .worker_threads(config.runtime_threads)
        // Idle moments make the next inline call's instance and drop the last one's store.
        .on_thread_park(make_instances_ahead)
        .on_thread_stop(forget_instances_made_ahead)
        .build()?;
    runtime.block_on(serve_folder(config, shutdown))
}

async fn serve_folder(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let runtime = Runtime::new(config.limits).context("cannot start the WebAssembly runtime")?;
    if let Some(cache) = &config.cache {
        cache.check(&config.functions_dir)?;
    }
    let cache = config.cache.as_ref().and_then(|c| c.open());
    let dir = config.functions_dir.clone();
    let mut functions = Reloader::open(runtime.clone(), &dir, cache)
        .with_context(|| format!("cannot read the functions folder {}", dir.display()))?;
    let (registry, failing) = (functions.registry(), functions.failing());

    // The port opens at once; health says NOT_SERVING, and calls wait, until the folder is loaded.
    let listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        "listening on {} ({}); loading {}",
        listener.local_addr()?,
        if config.serve.tls.is_some() {
            "mutual TLS"
        } else {
            "plaintext: no TLS, use --certs-dir for Qlik's mutual TLS"
        },
        dir.display()
    );
    if let Some(capture) = &config.serve.capture {
        tracing::warn!(
            "CAPTURING: every function call's headers and rows, as Qlik sends them, go to {} (they hold the \
             apps' data); run without --capture when done",
            capture.dir().display()
        );
    }
    let (ready, readiness) = tokio::sync::watch::channel(false);
    let (scripts_on, watch) = (config.serve.scripts, config.watch);
    let loading = tokio::spawn(async move {
        let started = std::time::Instant::now();
        if let Err(error) = functions.load_all().await {
            tracing::error!("cannot load the functions folder {}: {error}", dir.display());
        }
        let registry = functions.registry();
        let served = registry.load().entries().len();
        let languages = registry.load().script_languages().join(", ");
        let scripts = match (scripts_on, languages.is_empty()) {
            (true, false) => format!(" and scripts in {languages}"),
            (false, false) => " (scripts turned off)".to_owned(),
            (_, true) => String::new(),
        };
        tracing::info!(
            "serving {served} function(s){scripts} from {} (loaded in {:.1} s{})",
            dir.display(),
            started.elapsed().as_secs_f64(),
            if watch { "; reloading on change" } else { "" }
        );
        let _ = ready.send(true);
        if watch {
            match functions.watch() {
                // Watches until the host stops.
                Ok(_watching) => std::future::pending::<()>().await,
                Err(error) => tracing::error!("cannot watch {}: {error}; serving what is loaded", dir.display()),
            }
        }
    });
    let server = Server::new(runtime, registry, config.serve).starting(readiness);
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = config.metrics_listen {
        let metrics = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for metrics"))?;
        let at = metrics.local_addr()?;
        tracing::info!("status page at http://{at}/, metrics at http://{at}/metrics");
        let source = MetricsSource { failing: Some(failing), ..server.metrics_source() };
        tokio::spawn(crate::server::serve_metrics(metrics, source, async move {
            let _ = metrics_stopped.await;
        }));
    }
    let served = server.serve(listener, shutdown).await;
    drop(stop_metrics);
    loading.abort();
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (on Windows: Ctrl-C, Ctrl-Break, closing the console).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {error}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!("cannot listen for SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(windows)]
    let terminate = async {
        match (tokio::signal::windows::ctrl_break(), tokio::signal::windows::ctrl_close()) {
            (Ok(mut brk), Ok(mut close)) => {
                tokio::select! {
                    _ = brk.recv() => {},
                    _ = close.recv() => {},
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!("cannot listen for Ctrl-Break or the console closing: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(any(unix, windows)))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down (Ctrl-C again stops without waiting for calls in flight)");
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("a second Ctrl-C: stopping now");
            std::process::exit(130);
        }
    });
}
