//! The `sse-wasm` command: serves the components of a folder to Qlik, or, with a subcommand,
//! inspects or calls one module for its author.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sse_wasm::cli::{Command, Config, Flags};
use sse_wasm::reload::Functions;
use sse_wasm::server::Server;
use sse_wasm::tools::{self, new};
use sse_wasm::wasm::{LOAD_PARALLELISM, Runtime};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Blocking threads for file reads (the reloader's) beside calls and loads.
const FILE_THREADS: usize = 4;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut flags = Flags::parse();
    let command = flags.command.take();
    let default_level = if command.is_some() { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)))
        .init();
    let config = Config::from_flags(flags)?;
    // The tools run guest code on this thread, outside any async runtime, as the server's call
    // threads do.
    let mut out = std::io::stdout().lock();
    match command {
        Some(Command::Inspect { module }) => tools::inspect(&module, config.limits, config.cache.as_ref(), &mut out),
        Some(Command::Call { module, function, args, csv }) => {
            let rows = if csv { tools::csv_rows(std::io::stdin().lock())? } else { vec![args] };
            tools::call(&module, &function, &rows, config.limits, config.cache.as_ref(), &mut out)
        }
        Some(Command::New { lang, dir, sdk }) => {
            let build = new::create(lang, &dir, &sdk.unwrap_or_else(new::default_sdk))?;
            writeln!(out, "created {}; build it with:\n\n    cd {} && {build}", dir.display(), dir.display())?;
            Ok(())
        }
        Some(Command::DatasciSnapshot { python, stdlib, driver, out }) => {
            sse_wasm::wasm::datasci_snapshot(&python, &stdlib, &driver, &out)
        }
        Some(Command::WasiAdapter { out: path }) => {
            std::fs::write(&path, wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
                .with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            // Every call runs on a blocking thread while it holds a call slot, and loads take a
            // few more: the pool is sized to exactly that, so a slot always finds its thread and
            // no more threads than slots are ever made.
            let threads = config.serve.max_concurrent_calls + LOAD_PARALLELISM + FILE_THREADS;
            let runtime =
                tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(threads).build()?;
            runtime.block_on(serve_folder(config))
        }
    }
}

/// Serves the functions folder until Ctrl-C or SIGTERM.
async fn serve_folder(config: Config) -> anyhow::Result<()> {
    let runtime = Runtime::new(config.limits).context("cannot start the WebAssembly runtime")?;
    if let Some(cache) = &config.cache {
        cache.check(&config.functions_dir)?;
    }
    let cache = config.cache.as_ref().and_then(|c| c.open());
    let dir = config.functions_dir.clone();
    let mut functions = Functions::open(runtime.clone(), &dir, cache)
        .with_context(|| format!("cannot read the functions folder {}", dir.display()))?;
    let registry = functions.registry();

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
        tracing::info!("metrics at http://{}/metrics", metrics.local_addr()?);
        let source = server.metrics_source();
        tokio::spawn(sse_wasm::server::serve_metrics(metrics, source, async move {
            let _ = metrics_stopped.await;
        }));
    }
    let served = server.serve(listener, shutdown_signal()).await;
    drop(stop_metrics);
    loading.abort();
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
