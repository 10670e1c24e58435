//! The `sse-wasm` command: serves the components of a folder to Qlik, or, with a subcommand,
//! inspects or calls one module for its author, or runs as a Windows service.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sse_wasm::app::cli::{Command, Config, Flags, ModelsAction};
use sse_wasm::app::tools::{self, new};
use sse_wasm::app::{run, service};

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
    // The service's flags are its own (after `--`), and so is its log.
    let _log = if matches!(command, Some(Command::Service { .. })) {
        None
    } else {
        Some(run::init_logging(default_level, flags.log_file.as_deref())?)
    };
    // The tools run guest code on this thread, outside any async runtime, as the server's call
    // threads do. Only they and the server check the serving flags (and read the certificates
    // `--certs-dir` names).
    let mut out = std::io::stdout().lock();
    match command {
        Some(Command::Inspect { module }) => {
            let config = Config::from_flags(flags)?;
            tools::inspect(&module, config.limits, config.cache.as_ref(), &mut out)
        }
        Some(Command::Call { module, function, args, csv, replay }) => {
            let config = Config::from_flags(flags)?;
            let input = match replay {
                Some(file) => tools::replay_input(&file, &function, &mut std::io::stderr())?,
                None if csv => tools::Input::Rows(tools::csv_rows(std::io::stdin().lock())?),
                None => tools::Input::Rows(vec![args]),
            };
            tools::call(&module, &function, input, config.limits, config.cache.as_ref(), &mut out)
        }
        Some(Command::New { lang, dir, sdk }) => {
            let build = new::create(lang, &dir, &sdk.unwrap_or_else(new::default_sdk))?;
            writeln!(out, "created {}; build it with:\n\n    cd {} && {build}", dir.display(), dir.display())?;
            Ok(())
        }
        Some(Command::DatasciSnapshot { python, stdlib, driver, out }) => {
            tools::datasci_snapshot(&python, &stdlib, &driver, &out)
        }
        Some(Command::Service { action }) => service::run(action, &mut out),
        Some(Command::Models { action }) => {
            // The tool reads a store; it never makes one where a path was mistyped.
            if let Some(dir) = flags.models_dir.as_deref() {
                anyhow::ensure!(
                    dir.is_dir(),
                    "no model store at {}: nothing saved there yet, or a wrong path",
                    dir.display()
                );
            }
            let store = Config::from_flags(flags)?.serve.models.context("name the model store with --models-dir")?;
            match action {
                ModelsAction::List { app } => tools::models::list(&store, app.as_deref(), &mut out),
                ModelsAction::Delete { app, name } => tools::models::delete(&store, &app, &name, &mut out),
            }
        }
        Some(Command::Doctor { certs_dir, qlik_certs, host, listen, name }) => {
            let checkup = tools::doctor::Checkup { certs_dir, qlik_certs, host, listen, name };
            anyhow::ensure!(tools::doctor::run(&checkup, &mut out)?, "the connection is not ready: see PROBLEM above");
            Ok(())
        }
        Some(Command::WasiAdapter { out: path }) => {
            std::fs::write(&path, wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
                .with_context(|| format!("cannot write {}", path.display()))
        }
        None => run::serve_until(Config::from_flags(flags)?, run::shutdown_signal()),
    }
}
