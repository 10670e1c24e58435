//! What the host counts for operators, in Prometheus' text format (`--metrics-listen`): calls by
//! function and gRPC code, rows, call durations, waits for a call slot, slots and instances in use,
//! script evaluations by engine, loads by file, compile-cache hits and misses, functions served,
//! log lines dropped.
//!
//! A bottom layer beside `error`: the layers that do the work record into one [`Metrics`], which
//! the runtime carries. Label values come only from the functions folder (function names, file
//! names, script languages) and from gRPC codes, so their number is bounded by what is served.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a call's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// The function's name.
    pub function: String,
}

/// Labels of a finished call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The function's name.
    pub function: String,
    /// The gRPC code it ended with (`OK`, `INVALID_ARGUMENT`, ...).
    pub code: String,
}

/// Labels of a finished script evaluation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScriptLabels {
    /// The engine's language.
    pub engine: String,
    /// The gRPC code it ended with.
    pub code: String,
}

/// Labels of a load of one file.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoadLabels {
    /// The file's name.
    pub file: String,
    /// `loaded` (at start-up), `reloaded`, or `failed`.
    pub outcome: &'static str,
}

/// Every metric of one host.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Finished calls.
    pub calls: Family<CallLabels, Counter>,
    /// Rows received by calls that succeeded.
    pub rows_in: Family<FunctionLabels, Counter>,
    /// Rows answered by calls that succeeded.
    pub rows_out: Family<FunctionLabels, Counter>,
    /// How long calls took, from holding a slot to their last answer, in seconds.
    pub call_seconds: Family<FunctionLabels, Histogram>,
    /// How long calls waited for a free call slot, in seconds.
    pub slot_wait_seconds: Histogram,
    /// Calls holding a slot now (set when scraped).
    pub slots_in_use: Gauge,
    /// Guest stores alive now: each holds its instances' slots of the pool.
    pub instances_in_use: Gauge,
    /// Peak linear memory of each guest store, observed when it is dropped.
    pub guest_memory_bytes: Histogram,
    /// Finished script evaluations.
    pub script_evaluations: Family<ScriptLabels, Counter>,
    /// Loads of component files.
    pub loads: Family<LoadLabels, Counter>,
    /// Components whose machine code came from the compile cache.
    pub cache_hits: Counter,
    /// Components compiled because the cache had no valid entry (or there is no cache).
    pub cache_misses: Counter,
    /// Functions served now (set when scraped).
    pub functions: Gauge,
    /// Log lines dropped because the log's destination did not keep up (brought up to date
    /// when scraped).
    pub log_lines_dropped: Counter,
    /// Connections the listener failed to accept (out of file descriptors, kernel limits).
    pub accept_errors: Counter,
    /// Models kept in the model store, over every app (set when scraped).
    pub models_kept: Gauge,
    /// Their bytes (set when scraped).
    pub model_bytes: Gauge,
    /// Models saved by functions (brought up to date when scraped).
    pub model_saves: Counter,
    /// Models loaded by functions (brought up to date when scraped).
    pub model_loads: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sse_wasm");
        let calls = Family::default();
        registry.register("calls", "Finished calls, by function and gRPC code", calls.clone());
        let rows_in = Family::default();
        registry.register("rows_in", "Rows received by calls that succeeded", rows_in.clone());
        let rows_out = Family::default();
        registry.register("rows_out", "Rows answered by calls that succeeded", rows_out.clone());
        let call_seconds = Family::<FunctionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1e-4, 4.0, 10))
        });
        registry.register(
            "call_seconds",
            "Call duration, from holding a slot to the last answer",
            call_seconds.clone(),
        );
        let slot_wait_seconds = Histogram::new(exponential_buckets(1e-5, 4.0, 10));
        registry.register("slot_wait_seconds", "Time calls waited for a free call slot", slot_wait_seconds.clone());
        let slots_in_use = Gauge::default();
        registry.register("call_slots_in_use", "Calls holding a call slot", slots_in_use.clone());
        let instances_in_use = Gauge::default();
        registry.register(
            "instances_in_use",
            "Guest stores alive (calls, loads, instances made ahead, prepared script instances)",
            instances_in_use.clone(),
        );
        // 1 MiB to 4 GiB.
        let guest_memory_bytes = Histogram::new(exponential_buckets(f64::from(1 << 20), 2.0, 13));
        registry.register(
            "guest_memory_bytes",
            "Peak linear memory of each guest store (a call, an evaluation, a load), for sizing --max-memory",
            guest_memory_bytes.clone(),
        );
        let script_evaluations = Family::default();
        registry.register(
            "script_evaluations",
            "Finished script evaluations, by engine and gRPC code",
            script_evaluations.clone(),
        );
        let loads = Family::default();
        registry.register("module_loads", "Loads of component files, by file and outcome", loads.clone());
        let cache_hits = Counter::default();
        registry.register("compile_cache_hits", "Components taken from the compile cache", cache_hits.clone());
        let cache_misses = Counter::default();
        registry.register("compile_cache_misses", "Components compiled", cache_misses.clone());
        let functions = Gauge::default();
        registry.register("functions", "Functions served", functions.clone());
        let log_lines_dropped = Counter::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log's destination did not keep up",
            log_lines_dropped.clone(),
        );
        let accept_errors = Counter::default();
        registry.register(
            "accept_errors",
            "Connections the listener failed to accept (out of file descriptors, kernel limits)",
            accept_errors.clone(),
        );
        let models_kept = Gauge::default();
        registry.register("models_kept", "Models kept in the model store, over every app", models_kept.clone());
        let model_bytes = Gauge::default();
        registry.register("model_bytes", "Bytes of the models kept in the model store", model_bytes.clone());
        let model_saves = Counter::default();
        registry.register("model_saves", "Models saved by functions", model_saves.clone());
        let model_loads = Counter::default();
        registry.register("model_loads", "Models loaded by functions", model_loads.clone());
        Self {
            registry,
            calls,
            rows_in,
            rows_out,
            call_seconds,
            slot_wait_seconds,
            slots_in_use,
            instances_in_use,
            guest_memory_bytes,
            script_evaluations,
            loads,
            cache_hits,
            cache_misses,
            functions,
            log_lines_dropped,
            accept_errors,
            models_kept,
            model_bytes,
            model_saves,
            model_loads,
        }
    }
}

impl Metrics {
    /// Every metric in Prometheus' text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The name Prometheus' conventions give a gRPC code (`OK`, `NOT_FOUND`, ...).
pub fn code_name(code: tonic::Code) -> String {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_named_and_labelled_for_prometheus() {
        let metrics = Metrics::default();
        let labels = CallLabels { function: "SumOfRows".into(), code: code_name(tonic::Code::Ok) };
        metrics.calls.get_or_create(&labels).inc_by(2);
        metrics.cache_hits.inc();
        let text = metrics.encode();
        assert!(text.contains("sse_wasm_calls_total{function=\"SumOfRows\",code=\"OK\"} 2"), "{text}");
        assert!(text.contains("sse_wasm_compile_cache_hits_total 1"), "{text}");
        assert!(text.contains("# TYPE sse_wasm_call_seconds histogram"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
