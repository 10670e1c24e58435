//! The gRPC server: the connector (and the standard gRPC health service) served on a listener,
//! plaintext or mutual TLS, until a shutdown signal; then calls in flight get a bounded grace
//! period to finish.
//!
//! `connector` reads requests and finds what to run, `bridge` runs it on a blocking thread and
//! streams the answers, `options` says how clients are treated, `capture` records what Qlik sent
//! when asked to (`--capture`). The top of the call path: it uses
//! `call`, `registry`, `wire` and `wasm`; nothing below uses it.

mod accept;
mod bridge;
pub mod capture;
mod connector;
mod metrics_http;
mod options;
mod status_page;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::functions::registry::SharedRegistry;
use crate::wasm::Runtime;
use crate::wire::pb::raw::connector_server::ConnectorServer;

use bridge::Bridge;
pub use bridge::{AnswerStream, CallSlots};
use connector::ConnectorService;
pub use metrics_http::{MetricsSource, serve_metrics};
pub use options::{ServeOptions, TlsFiles};

/// The gRPC server: the connector, its limits and its health reporting.
pub struct Server {
    runtime: Runtime,
    registry: SharedRegistry,
    options: ServeOptions,
    slots: CallSlots,
    /// True once `registry` holds the whole functions folder.
    ready: watch::Receiver<bool>,
    /// When it was made, for the status page's uptime.
    started: std::time::Instant,
}

impl Server {
    /// A server for the functions of `registry`, which is complete.
    pub fn new(runtime: Runtime, registry: SharedRegistry, options: ServeOptions) -> Self {
        let slots = CallSlots::new(options.max_concurrent_calls);
        let started = std::time::Instant::now();
        Self { runtime, registry, options, slots, ready: watch::channel(true).1, started }
    }

    /// Serves while `registry` is still being filled: until `ready` turns true, the health
    /// service says NOT_SERVING and calls wait for it (up to the stall timeout), so no client
    /// ever sees a partial list of functions.
    pub fn starting(mut self, ready: watch::Receiver<bool>) -> Self {
        self.ready = ready;
        self
    }

    /// What a metrics scrape reads: the runtime's metrics, the functions served, the call slots,
    /// the model store.
    pub fn metrics_source(&self) -> MetricsSource {
        MetricsSource {
            metrics: self.runtime.metrics().clone(),
            registry: self.registry.clone(),
            slots: self.slots.clone(),
            models: self.options.models.clone(),
            failing: None,
            started: self.started,
        }
    }

    /// The call slots, to watch how many calls are running.
    pub fn slots(&self) -> CallSlots {
        self.slots.clone()
    }

    /// Serves on `listener` until `shutdown` resolves; then reports NOT_SERVING on the health
    /// service, keeps accepting for the drain delay, ends health watches, stops accepting, and
    /// waits up to the grace period for calls in flight.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (mut health, health_service) = tonic_health::server::health_reporter();
        let connector_name = <ConnectorServer<ConnectorService> as NamedService>::NAME;
        let ready = self.ready.clone();
        let status = if *ready.borrow() { ServingStatus::Serving } else { ServingStatus::NotServing };
        for service in ["", connector_name] {
            health.set_service_status(service, status).await;
        }

        // Calls waiting for the folder are let through once health says SERVING, never before: a
        // client that saw an answer and then asks health must not read NOT_SERVING.
        let (serving, serving_seen) = watch::channel(*ready.borrow());
        let metrics = self.runtime.metrics().clone();
        let bridge = Bridge { slots: self.slots.clone(), stall_timeout: self.options.stall_timeout, metrics };
        let accept_errors = self.runtime.metrics().accept_errors.clone();
        let service = ConnectorService::new(self.runtime, self.registry, bridge, serving_seen, &self.options);
        let connector = ConnectorServer::new(service)
            .max_decoding_message_size(self.options.max_message_bytes)
            .max_encoding_message_size(usize::MAX);

        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.options.tls {
            let config = ServerTlsConfig::new()
                .identity(Identity::from_pem(&tls.server_cert, &tls.server_key))
                .client_ca_root(Certificate::from_pem(&tls.root_cert));
            builder = builder.tls_config(config)?;
        }

        // Accepted here rather than by tonic: the builder's `tcp_nodelay` only reaches sockets
        // tonic accepts itself, and it passes failed accepts over in silence.
        let incoming = accept::incoming(listener, accept_errors);

        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let drain = self.options.drain_delay;
        let signal = async move {
            lifecycle(&mut health, connector_name, ready, serving, shutdown, drain).await;
            let _ = stopping.send(());
        };
        let serving =
            builder.add_service(health_service).add_service(connector).serve_with_incoming_shutdown(incoming, signal);
        tokio::pin!(serving);

        let grace = self.options.shutdown_grace;
        tokio::select! {
            result = &mut serving => return Ok(result?),
            _ = stopped => {}
        }
        match tokio::time::timeout(grace, serving).await {
            Ok(result) => Ok(result?),
            Err(_) => {
                tracing::warn!(
                    "{} call(s) still running after the {:.0} s grace period; stopping anyway",
                    self.slots.in_flight(),
                    grace.as_secs_f64()
                );
                Ok(())
            }
        }
    }
}

/// What health says over the server's life: SERVING once `ready` (if it was not already), then
/// `serving` turns true; on `shutdown` NOT_SERVING for the drain delay, after which the statuses
/// are cleared, which ends open Watch streams. Returns when the listener should close.
async fn lifecycle(
    health: &mut HealthReporter,
    connector: &str,
    mut ready: watch::Receiver<bool>,
    serving: watch::Sender<bool>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let services = ["", connector];
    let serving_once_ready = async {
        if !*ready.borrow() && ready.wait_for(|ready| *ready).await.is_ok() {
            for service in services {
                health.set_service_status(service, ServingStatus::Serving).await;
            }
            serving.send_replace(true);
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = shutdown => {}
        () = serving_once_ready => {}
    }
    for service in services {
        health.set_service_status(service, ServingStatus::NotServing).await;
    }
    if !drain.is_zero() {
        tracing::info!("draining: health says NOT_SERVING; still accepting calls for {:.1} s", drain.as_secs_f64());
        tokio::time::sleep(drain).await;
    }
    // Watch streams end with their service's status, so none keeps a stopping host alive.
    for service in services {
        health.clear_service_status(service).await;
    }
    tracing::info!("no new calls; waiting for calls in flight");
}

/// Serves `registry` on `listener` with default options until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    runtime: Runtime,
    registry: SharedRegistry,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    Server::new(runtime, registry, options).serve(listener, shutdown).await
}
