//! The host's error types, and the one place they become gRPC statuses.
//!
//! The server log gets the whole story; Qlik gets a fixed code and a short message an administrator
//! can act on: the function's name and what was wrong, never a host path or a backtrace.

use std::path::PathBuf;

use tonic::{Code, Status};

/// Why a component could not be loaded. The previous version of that file, if any, keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid component, or do not compile.
    #[error("{path} is not a loadable WebAssembly component (or data-science engine module): {reason:#}")]
    Compile {
        /// The file.
        path: PathBuf,
        /// What wasmtime said.
        reason: wasmtime::Error,
    },
    /// The component does not fit the `qlik:sse` worlds (a missing export, a wrong signature,
    /// an import the host does not provide).
    #[error("{path} does not fit the qlik:sse worlds (plugin, script-engine): {reason:#}")]
    World {
        /// The file.
        path: PathBuf,
        /// What did not fit.
        reason: wasmtime::Error,
    },
    /// `describe` trapped, ran out of time or memory.
    #[error("{path}: describe failed: {reason}")]
    Describe {
        /// The file.
        path: PathBuf,
        /// The failure.
        reason: CallError,
    },
    /// A declaration breaks the rules of the WIT world.
    #[error("{path}: {reason}")]
    Declaration {
        /// The file.
        path: PathBuf,
        /// The broken rule, naming the function.
        reason: String,
    },
}

/// Why one call failed. Each variant maps to one gRPC code in [`CallError::to_status`].
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// A request header is missing or cannot be decoded.
    #[error("{0}")]
    BadHeader(String),
    /// No function has the requested id.
    #[error("no function with id {0} is loaded (GetCapabilities lists the current ones)")]
    UnknownFunction(i32),
    /// The function with this id was served once, and its module has since dropped it.
    #[error("function {name} (id {id}) is no longer loaded: its module was removed or no longer declares it")]
    RemovedFunction {
        /// The id asked for.
        id: i32,
        /// The name it had.
        name: String,
    },
    /// The request's rows do not match the function's parameters.
    #[error("{function}: {reason}")]
    BadInput {
        /// The function's name.
        function: String,
        /// What was wrong with the input.
        reason: String,
    },
    /// The guest answered with an error value.
    #[error("{function} failed: {message}")]
    Guest {
        /// The function's name.
        function: String,
        /// The guest's message.
        message: String,
    },
    /// The guest's answer breaks its own declaration.
    #[error("{function} answered wrongly: {reason}")]
    BadOutput {
        /// The function's name.
        function: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The call used more CPU time than it may.
    #[error("{function} ran past its CPU time limit of {seconds} s")]
    Deadline {
        /// The function's name.
        function: String,
        /// The limit.
        seconds: f64,
    },
    /// The call spent the wall-clock backstop in the guest (waiting, or starved of CPU).
    #[error(
        "{function} spent {seconds} s in the guest without finishing (the wall-clock limit, 4 times the CPU time limit)"
    )]
    Waited {
        /// The function's name.
        function: String,
        /// The wall-clock limit.
        seconds: f64,
    },
    /// Every instance slot of the engine's pool is taken by calls in flight.
    #[error("{function}: no instance slot is free ({detail}); too many calls at once for this host, retry later")]
    PoolExhausted {
        /// The function's name.
        function: String,
        /// What ran out.
        detail: String,
    },
    /// The guest tried to grow its memory past the cap.
    #[error("{function} needed more than its memory limit of {limit_mib} MiB")]
    Memory {
        /// The function's name.
        function: String,
        /// The cap.
        limit_mib: usize,
    },
    /// The rows a call collects in the host before the guest runs on them (a data-science
    /// script, a Python aggregation) grew past the per-call input limit.
    #[error(
        "{function}: the call's rows passed the input limit of {limit_mib} MiB held for one call (--max-input); \
         send fewer rows or columns, or raise the limit"
    )]
    InputTooLarge {
        /// The function's name.
        function: String,
        /// The limit.
        limit_mib: usize,
    },
    /// The guest trapped (a panic, an out-of-bounds access, a stack overflow...).
    #[error("{function} crashed: {trap}")]
    Trap {
        /// The function's name.
        function: String,
        /// The kind of trap, and the guest's message when it printed one.
        trap: String,
    },
    /// A result row is larger than any message Qlik accepts.
    #[error("{function} answered a row of {bytes} bytes; Qlik accepts at most 4 MiB per message")]
    OversizedRow {
        /// The function's name.
        function: String,
        /// The row's encoded size.
        bytes: usize,
    },
    /// The request stream failed: a message too large or not decodable, a broken connection.
    #[error("{function}: the request stream failed: {message}")]
    Stream {
        /// The function's name.
        function: String,
        /// The code to answer with.
        code: Code,
        /// What went wrong.
        message: String,
    },
    /// The client neither sent nor read for too long.
    #[error("the client neither sent nor read for {seconds} s")]
    Stalled {
        /// The stall timeout.
        seconds: f64,
    },
    /// No loaded script engine runs the script's language.
    #[error("{0}")]
    NoScriptEngine(String),
    /// Scripts are turned off on this host.
    #[error("script evaluation is turned off on this host (GetCapabilities says allowScript: false)")]
    ScriptsDisabled,
    /// The client went away; nobody is waiting for an answer.
    #[error("the call was cancelled")]
    Cancelled,
    /// A call run on the thread that took its request in ran past the time allowed there; the
    /// host runs it again from the start on a call thread, so no client ever sees this.
    #[error("the call outgrew the thread that took its request in")]
    OutgrewInline,
    /// The model store refused what a function asked of it.
    #[error("{function}: {}", error.message)]
    Models {
        /// The function's name.
        function: String,
        /// What the store said.
        error: ModelError,
    },
    /// The host failed in a way that is not the guest's or the client's doing.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of refusal a [`ModelError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFault {
    /// The name could be a path, or is not a model name.
    Name,
    /// A model, or an app's models, would exceed their limit.
    Limit,
    /// No model has that name.
    Missing,
    /// The store's folder failed (a full disk, permissions).
    Storage,
    /// The host keeps no models (started without a store).
    Off,
}

/// Why the model store refused a save or a load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    /// Its kind, which sets the gRPC code.
    pub fault: ModelFault,
    /// What was wrong, naming the model and the limit.
    pub message: String,
}

impl ModelError {
    /// A refusal of kind `fault`.
    pub fn new(fault: ModelFault, message: String) -> Self {
        Self { fault, message }
    }
}

impl CallError {
    /// The request's rows do not fit `function`'s parameters, for `reason`.
    pub fn bad_input(function: impl Into<String>, reason: impl ToString) -> Self {
        Self::BadInput { function: function.into(), reason: reason.to_string() }
    }

    /// The gRPC status Qlik receives for this error.
    pub fn to_status(&self) -> Status {
        let code = match self {
            Self::BadHeader(_) | Self::BadInput { .. } | Self::Guest { .. } => Code::InvalidArgument,
            Self::UnknownFunction(_) | Self::RemovedFunction { .. } => Code::NotFound,
            Self::BadOutput { .. } | Self::Trap { .. } => Code::Internal,
            Self::Deadline { .. } | Self::Waited { .. } => Code::DeadlineExceeded,
            Self::Memory { .. }
            | Self::InputTooLarge { .. }
            | Self::OversizedRow { .. }
            | Self::PoolExhausted { .. } => Code::ResourceExhausted,
            Self::Stream { code, .. } => *code,
            Self::Stalled { .. } => Code::DeadlineExceeded,
            Self::Cancelled => Code::Cancelled,
            Self::Internal(_) | Self::OutgrewInline => Code::Internal,
            Self::NoScriptEngine(_) => Code::FailedPrecondition,
            Self::ScriptsDisabled => Code::Unimplemented,
            Self::Models { error, .. } => match error.fault {
                ModelFault::Name => Code::InvalidArgument,
                ModelFault::Limit => Code::ResourceExhausted,
                ModelFault::Missing => Code::NotFound,
                ModelFault::Storage => Code::Unavailable,
                ModelFault::Off => Code::FailedPrecondition,
            },
        };
        Status::new(code, self.to_string())
    }
}

impl From<CallError> for Status {
    fn from(error: CallError) -> Self {
        error.to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function() -> String {
        "F".to_owned()
    }

    #[test]
    fn each_error_has_its_grpc_code_and_names_the_function() {
        let cases = [
            (CallError::BadHeader("the header is missing".into()), Code::InvalidArgument),
            (CallError::UnknownFunction(7), Code::NotFound),
            (CallError::RemovedFunction { id: 7, name: function() }, Code::NotFound),
            (CallError::BadInput { function: function(), reason: "r".into() }, Code::InvalidArgument),
            (CallError::Guest { function: function(), message: "m".into() }, Code::InvalidArgument),
            (CallError::BadOutput { function: function(), reason: "r".into() }, Code::Internal),
            (CallError::Deadline { function: function(), seconds: 1.0 }, Code::DeadlineExceeded),
            (CallError::Waited { function: function(), seconds: 4.0 }, Code::DeadlineExceeded),
            (CallError::PoolExhausted { function: function(), detail: "d".into() }, Code::ResourceExhausted),
            (CallError::Memory { function: function(), limit_mib: 512 }, Code::ResourceExhausted),
            (CallError::InputTooLarge { function: function(), limit_mib: 256 }, Code::ResourceExhausted),
            (CallError::Trap { function: function(), trap: "t".into() }, Code::Internal),
            (CallError::OversizedRow { function: function(), bytes: 5 << 20 }, Code::ResourceExhausted),
            (
                CallError::Stream { function: function(), code: Code::OutOfRange, message: "too large".into() },
                Code::OutOfRange,
            ),
            (CallError::Stalled { seconds: 60.0 }, Code::DeadlineExceeded),
            (CallError::NoScriptEngine("no python".into()), Code::FailedPrecondition),
            (CallError::ScriptsDisabled, Code::Unimplemented),
            (CallError::Cancelled, Code::Cancelled),
            (CallError::Internal("x".into()), Code::Internal),
        ];
        let models = [
            (ModelFault::Name, Code::InvalidArgument),
            (ModelFault::Limit, Code::ResourceExhausted),
            (ModelFault::Missing, Code::NotFound),
            (ModelFault::Storage, Code::Unavailable),
            (ModelFault::Off, Code::FailedPrecondition),
        ];
        let cases = cases.into_iter().chain(models.map(|(fault, code)| {
            (CallError::Models { function: function(), error: ModelError::new(fault, "why".into()) }, code)
        }));
        for (error, code) in cases {
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{}", status.message());
            assert!(!status.message().is_empty());
        }
        let named = [
            CallError::BadInput { function: function(), reason: "r".into() },
            CallError::Memory { function: function(), limit_mib: 512 },
            CallError::Deadline { function: function(), seconds: 2.5 },
        ];
        for error in named {
            assert!(error.to_status().message().starts_with("F"), "{error}");
        }
        assert_eq!(
            CallError::Memory { function: function(), limit_mib: 512 }.to_status().message(),
            "F needed more than its memory limit of 512 MiB"
        );
    }
}
