//! What the host tells its operators: the counters and histograms it exposes to Prometheus
//! ([`metrics`]), and the buffered writer its log lines go through ([`log`]).
//!
//! Depends on nothing else of the crate: every layer above may count and log.

pub mod log;
pub mod metrics;
