//! One log line, and the metrics, per call.

use std::sync::Arc;
use std::time::Instant;

use tonic::Status;

use crate::error::CallError;
use crate::functions::call::CallStats;
use crate::observe::metrics::{self, CallLabels, FunctionLabels, Metrics, ScriptLabels};

/// What a call is counted as in the metrics.
#[derive(Clone, Debug)]
pub(crate) enum Counted {
    /// A call of the function with this name.
    Function(String),
    /// An evaluation by the script engine of this language.
    Script(String),
}

/// One log line, and the metrics, per call.
pub(super) struct CallLog {
    pub(super) function: String,
    pub(super) app: String,
    pub(super) started: Instant,
    pub(super) counted: Counted,
    pub(super) metrics: Arc<Metrics>,
}

impl CallLog {
    fn count(&self, result: &Result<CallStats, CallError>) {
        let code = metrics::code_name(match result {
            Ok(_) => tonic::Code::Ok,
            Err(error) => error.to_status().code(),
        });
        match &self.counted {
            Counted::Function(function) => {
                let labels = FunctionLabels { function: function.clone() };
                self.metrics.calls.get_or_create(&CallLabels { function: function.clone(), code }).inc();
                self.metrics.call_seconds.get_or_create(&labels).observe(self.started.elapsed().as_secs_f64());
                if let Ok(stats) = result {
                    self.metrics.rows_in.get_or_create(&labels).inc_by(stats.rows_in as u64);
                    self.metrics.rows_out.get_or_create(&labels).inc_by(stats.rows_out as u64);
                }
            }
            Counted::Script(engine) => {
                self.metrics.script_evaluations.get_or_create(&ScriptLabels { engine: engine.clone(), code }).inc();
            }
        }
    }

    /// Logs how the call ended; the status to send when it failed (none for a cancellation,
    /// which nobody hears).
    pub(super) fn finish(&self, result: Result<CallStats, CallError>) -> Result<(), Status> {
        self.count(&result);
        let (function, app) = (&self.function, &self.app);
        let ms = format_args!("{:.1}", self.started.elapsed().as_secs_f64() * 1e3);
        match result {
            Ok(stats) => {
                tracing::info!(%function, rows_in = stats.rows_in, rows_out = stats.rows_out, %ms, %app, "call done");
                Ok(())
            }
            Err(CallError::Cancelled) => {
                tracing::info!(%function, %ms, %app, "call cancelled");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%function, %ms, %app, "call failed: {error}");
                Err(error.to_status())
            }
        }
    }
}
