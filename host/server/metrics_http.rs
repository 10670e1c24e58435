//! `--metrics-listen`: the metrics, in OpenMetrics text (which Prometheus scrapes), at `/metrics`,
//! and the status page for people at `/`, over plain HTTP/1.1. Gauges of the moment (call slots in
//! use, functions served) are read when scraped.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::functions::registry::SharedRegistry;
use crate::functions::reload::FailingFiles;
use crate::observe::metrics::Metrics;
use crate::wasm::ModelStore;

use super::bridge::CallSlots;
use super::status_page::Status;

/// What a scrape reads.
#[derive(Clone)]
pub struct MetricsSource {
    /// The counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The functions served, for their number.
    pub registry: SharedRegistry,
    /// The call slots, for how many are in use.
    pub slots: CallSlots,
    /// The model store, if the host keeps one.
    pub models: Option<Arc<ModelStore>>,
    /// The files that failed to load, when the folder is watched by a reloader.
    pub failing: Option<FailingFiles>,
    /// When the server started.
    pub started: std::time::Instant,
}

impl MetricsSource {
    fn scrape(&self) -> String {
        self.metrics.functions.set(i64::try_from(self.registry.load().entries().len()).unwrap_or(i64::MAX));
        self.metrics.slots_in_use.set(i64::try_from(self.slots.in_flight()).unwrap_or(i64::MAX));
        // Raised to the count, never lowered: concurrent scrapes agree.
        let dropped = crate::observe::log::dropped_lines();
        self.metrics.log_lines_dropped.inner().fetch_max(dropped, std::sync::atomic::Ordering::Relaxed);
        if let Some(store) = &self.models {
            let (models, bytes) = store.totals();
            self.metrics.models_kept.set(i64::try_from(models).unwrap_or(i64::MAX));
            self.metrics.model_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            let counts = store.counts();
            self.metrics.model_saves.inner().fetch_max(counts.saves, std::sync::atomic::Ordering::Relaxed);
            self.metrics.model_loads.inner().fetch_max(counts.loads, std::sync::atomic::Ordering::Relaxed);
        }
        self.metrics.encode()
    }
}

impl MetricsSource {
    /// The status page, as things are now.
    fn status_page(&self) -> String {
        let scrape = self.scrape();
        let failing = self.failing.as_ref().map(|f| f.lock().unwrap_or_else(|e| e.into_inner()).clone());
        let registry = self.registry.load();
        super::status_page::render(&Status {
            registry: &registry,
            failing: &failing.unwrap_or_default(),
            uptime: self.started.elapsed().as_secs(),
            running: self.slots.in_flight(),
            models: self.models.is_some(),
            scrape: &scrape,
        })
    }
}

/// Serves `source` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(listener: TcpListener, source: MetricsSource, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!("metrics listener: {error}");
                    continue;
                }
            },
        };
        let source = source.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(answer(&source, &request)) }
            });
            // A client that breaks off is its own business.
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn answer<B>(source: &MetricsSource, request: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            (StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", source.scrape())
        }
        (&Method::GET, "/") => (StatusCode::OK, "text/html; charset=utf-8", source.status_page()),
        (_, "/metrics" | "/") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "the status page is at /, the metrics at /metrics\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}
