//! `sse-wasm service install|uninstall|run`: the host as a Windows service, which an administrator
//! installs with one command. The service serves with the flags given at install, from the folder
//! it was installed from (so relative paths mean what they meant there), logging to a file; a stop
//! from the service manager, or the machine shutting down, drains calls as Ctrl-C does.
//!
//! `service run` is what the service manager starts. Elsewhere than on Windows it serves in the
//! foreground in the same way, so what `install` records can be checked on any machine.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::app::cli::{Config, Flags, ServiceAction};

/// The log file, in the folder the service was installed from, unless its flags name one.
pub const DEFAULT_LOG: &str = "sse-wasm.log";

/// The arguments the service manager starts `sse-wasm` with.
pub fn launch_arguments(name: &str, dir: &Path, flags: &[OsString]) -> Vec<OsString> {
    let head = ["service", "run", "--name", name, "--dir"].map(OsString::from);
    head.into_iter().chain([dir.as_os_str().to_owned(), "--".into()]).chain(flags.iter().cloned()).collect()
}

/// Where the service's settings come from besides its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// The `SSE_WASM_*` variables of this process too: the service itself, whose environment is
    /// the service manager's.
    Read,
    /// The flags alone: `service install`, run from an administrator's prompt whose variables
    /// the service will not have.
    Ignored,
}

/// The server's flags as the service reads them: no subcommand, and a log file in `dir` unless
/// they name one.
pub fn server_flags(dir: &Path, flags: &[OsString], environment: Environment) -> anyhow::Result<Flags> {
    let args = std::iter::once(OsString::from("sse-wasm")).chain(flags.iter().cloned());
    let parsed = match environment {
        Environment::Read => Flags::try_parse_from(args),
        Environment::Ignored => Flags::command()
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(args)
            .and_then(|matches| Flags::from_arg_matches(&matches)),
    };
    let mut parsed = parsed.context("the service's flags (after `--`) are the server's")?;
    anyhow::ensure!(
        parsed.command.is_none(),
        "the service's flags (after `--`) are the server's, without a subcommand"
    );
    parsed.log_file = Some(dir.join(parsed.log_file.take().unwrap_or_else(|| PathBuf::from(DEFAULT_LOG))));
    Ok(parsed)
}

/// Runs `action`, telling the administrator what happened on `out`.
pub fn run(action: ServiceAction, out: &mut impl Write) -> anyhow::Result<()> {
    match action {
        ServiceAction::Install { name, account, password, flags } => {
            let dir = std::env::current_dir().context("cannot tell the current folder")?;
            // Checked as the service will read them: this prompt's variables are not its own.
            let parsed = server_flags(&dir, &flags, Environment::Ignored)?;
            let command = Flags::command();
            let server_variables = command.get_arguments().filter_map(|arg| arg.get_env());
            for variable in server_variables.filter(|v| std::env::var_os(v).is_some()) {
                writeln!(
                    out,
                    "note: {} is set here, but the service does not read this prompt's variables; give the \
                     setting as a flag after `--`",
                    variable.to_string_lossy()
                )?;
            }
            let log = parsed.log_file.clone().unwrap_or_default();
            // Refused now, not when the service first starts: bad flags, missing certificates.
            let config = Config::from_flags(parsed)?;
            windows::install(&name, account, password, &dir, &flags)?;
            writeln!(
                out,
                "installed and started the service {name}: serving {} on {}; log: {}\nstop it with `sc stop {name}`, \
                 remove it with `sse-wasm service uninstall --name {name}`",
                dir.join(&config.functions_dir).display(),
                config.listen,
                log.display()
            )?;
            Ok(())
        }
        ServiceAction::Uninstall { name } => {
            windows::uninstall(&name)?;
            writeln!(out, "stopped and removed the service {name}")?;
            Ok(())
        }
        ServiceAction::Run { name, dir, flags } => {
            std::env::set_current_dir(&dir).with_context(|| format!("cannot enter {}", dir.display()))?;
            let parsed = server_flags(&dir, &flags, Environment::Read)?;
            let _log = crate::app::run::init_logging("info", parsed.log_file.as_deref())?;
            let config = Config::from_flags(parsed);
            if let Err(error) = &config {
                tracing::error!("the service {name} cannot start: {error:#}");
            }
            windows::run(name, config?)
        }
    }
}

#[cfg(windows)]
mod windows {
    //! The service manager's side: registering, removing, and the service's life.

    #![allow(unsafe_code)]

    use std::ffi::OsString;
    use std::path::Path;
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    use anyhow::Context;
    use windows_service::service::{
        ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceInfo,
        ServiceStartType, ServiceState, ServiceStatus, ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_dispatcher;
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

    use crate::app::cli::Config;

    /// What the service's main function serves: set once before the dispatcher starts it.
    static SERVICE: OnceLock<(String, std::sync::Mutex<Option<Config>>)> = OnceLock::new();

    pub fn install(
        name: &str,
        account: Option<String>,
        password: Option<String>,
        dir: &Path,
        flags: &[OsString],
    ) -> anyhow::Result<()> {
        let manager = ServiceManager::local_computer(
            None::<&str>,
            ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
        )
        .context("cannot reach the service manager (run this from an administrator's prompt)")?;
        let info = ServiceInfo {
            name: name.into(),
            display_name: format!("sse-wasm ({name}): Qlik analytic connection").into(),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: std::env::current_exe().context("cannot tell where sse-wasm.exe is")?,
            launch_arguments: super::launch_arguments(name, dir, flags),
            dependencies: vec![],
            account_name: account.map(OsString::from),
            account_password: password.map(OsString::from),
        };
        let service = manager
            .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
            .with_context(|| format!("cannot install the service {name}"))?;
        service.set_description(format!("Serves the WebAssembly functions of {} to Qlik", dir.display()))?;
        service.start::<&str>(&[]).with_context(|| format!("installed the service {name}, but it did not start"))?;
        Ok(())
    }

    pub fn uninstall(name: &str) -> anyhow::Result<()> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
            .context("cannot reach the service manager (run this from an administrator's prompt)")?;
        let service = manager
            .open_service(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)
            .with_context(|| format!("there is no service {name} to remove"))?;
        // Marked for deletion first: it goes as soon as it has stopped.
        service.delete().with_context(|| format!("cannot remove the service {name}"))?;
        if service.query_status()?.current_state != ServiceState::Stopped {
            service.stop().with_context(|| format!("removed the service {name}, but it did not stop"))?;
        }
        Ok(())
    }

    windows_service::define_windows_service!(ffi_service_main, service_main);

    /// Hands the thread to the service manager, which calls `service_main` on another.
    pub fn run(name: String, config: Config) -> anyhow::Result<()> {
        let _ = SERVICE.set((name.clone(), std::sync::Mutex::new(Some(config))));
        service_dispatcher::start(&name, ffi_service_main)
            .with_context(|| format!("cannot run as the service {name}: only the service manager starts `service run`"))
    }

    fn service_main(_: Vec<OsString>) {
        if let Err(error) = serve() {
            tracing::error!("the service stopped on an error: {error:#}");
        }
    }

    fn status(state: ServiceState, wait: Duration, failed: bool) -> ServiceStatus {
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            } else {
                ServiceControlAccept::empty()
            },
            exit_code: if failed { ServiceExitCode::ServiceSpecific(1) } else { ServiceExitCode::Win32(0) },
            checkpoint: 0,
            wait_hint: wait,
            process_id: None,
        }
    }

    fn serve() -> anyhow::Result<()> {
        let (name, config) = SERVICE.get().context("the service was started without its configuration")?;
        let config = config.lock().ok().and_then(|mut c| c.take()).context("the service was started twice")?;
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopping = stop.clone();
        let handle = service_control_handler::register(name, move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                stopping.notify_one();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        })?;
        handle.set_service_status(status(ServiceState::Running, Duration::ZERO, false))?;
        // Draining takes up to the drain delay and the grace: the manager is told so.
        let draining = config.serve.drain_delay + config.serve.shutdown_grace + Duration::from_secs(5);
        let shutdown = async move {
            stop.notified().await;
            tracing::info!("the service manager asked {name} to stop");
            let _ = handle.set_service_status(status(ServiceState::StopPending, draining, false));
        };
        let served = crate::app::run::serve_until(config, shutdown);
        handle.set_service_status(status(ServiceState::Stopped, Duration::ZERO, served.is_err()))?;
        served
    }
}

#[cfg(not(windows))]
mod windows {
    //! Elsewhere there is no service manager: `install` and `uninstall` say where to look
    //! instead, and `run` serves in the foreground until Ctrl-C or SIGTERM.

    use std::ffi::OsString;
    use std::path::Path;

    use crate::app::cli::Config;

    const ONLY_WINDOWS: &str = "`sse-wasm service` installs a Windows service; elsewhere run `sse-wasm` under \
                                your service manager (deploy/ has a Dockerfile and Kubernetes manifests)";

    pub fn install(_: &str, _: Option<String>, _: Option<String>, _: &Path, _: &[OsString]) -> anyhow::Result<()> {
        anyhow::bail!(ONLY_WINDOWS)
    }

    pub fn uninstall(_: &str) -> anyhow::Result<()> {
        anyhow::bail!(ONLY_WINDOWS)
    }

    pub fn run(_: String, config: Config) -> anyhow::Result<()> {
        crate::app::run::serve_until(config, crate::app::run::shutdown_signal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_arguments_read_back_as_the_flags_given_at_install() {
        let dir = Path::new("/srv/qlik functions");
        let given: Vec<OsString> =
            ["--listen", "0.0.0.0:50051", "--functions-dir", "fns", "--certs-dir", "certs"].map(OsString::from).into();
        let args = launch_arguments("sse-wasm-2", dir, &given);
        let parsed = crate::app::cli::Flags::try_parse_from(std::iter::once(OsString::from("sse-wasm")).chain(args))
            .expect("the service manager's command line parses");
        let Some(crate::app::cli::Command::Service { action: ServiceAction::Run { name, dir: read_dir, flags } }) =
            parsed.command
        else {
            panic!("not `service run`");
        };
        assert_eq!((name.as_str(), read_dir.as_path(), &flags), ("sse-wasm-2", dir, &given));
        let served = server_flags(&read_dir, &flags, Environment::Read).expect("the server's flags");
        assert_eq!(served.listen.to_string(), "0.0.0.0:50051");
        assert_eq!(served.functions_dir, Path::new("fns"), "relative: the service runs from its folder");
        assert_eq!(served.log_file.as_deref(), Some(dir.join(DEFAULT_LOG).as_path()));
        let named = server_flags(dir, &["--log-file".into(), "logs/x.log".into()], Environment::Read).expect("flags");
        assert_eq!(named.log_file.as_deref(), Some(dir.join("logs/x.log").as_path()));
        let error = server_flags(dir, &["inspect".into(), "a.wasm".into()], Environment::Read)
            .expect_err("a subcommand")
            .to_string();
        assert!(error.contains("without a subcommand"), "{error}");
        let error =
            server_flags(dir, &["--listen".into(), "nowhere".into()], Environment::Ignored).expect_err("bad flag");
        assert!(format!("{error:#}").contains("--listen"), "{error:#}");
    }
}
