//! What a call's job sees of the gRPC streams, and how it runs: where it reads request messages,
//! sends answers and adds answer headers; the errors of a request stream that failed or stalled;
//! a panic of the host's own code turned into an error that names the call.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::error::CallError;
use crate::wire::codec::EncodedRows;

/// Where a call reads its request messages from.
pub(crate) type Next<'a> = &'a mut dyn FnMut() -> Result<Option<Bytes>, CallError>;
/// Where a call sends its answer messages to.
pub(crate) type Sink<'a> = &'a mut dyn FnMut(EncodedRows) -> Result<(), CallError>;
/// Where a call adds answer headers (a script's TableDescription), before its first message.
pub(crate) type Headers<'a> = &'a mut dyn FnMut(MetadataMap);

/// When a call's answer headers are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadersKnown {
    /// Before it runs: they are sent at once, and the call adds none.
    Before,
    /// Only when it sends its first message (or ends): a script decides its TableDescription.
    AtFirstMessage,
}

/// `more` added to `metadata`.
pub(super) fn merged(metadata: MetadataMap, more: MetadataMap) -> MetadataMap {
    let mut headers = metadata.into_headers();
    headers.extend(more.into_headers());
    MetadataMap::from_headers(headers)
}

/// Headers a call may still add to, until its first message sends them.
pub(super) struct PendingHeaders {
    pub(super) metadata: Option<MetadataMap>,
    pub(super) sender: Option<oneshot::Sender<MetadataMap>>,
}

impl PendingHeaders {
    pub(super) fn add(&mut self, more: MetadataMap) {
        if let Some(metadata) = self.metadata.take() {
            self.metadata = Some(merged(metadata, more));
        } else {
            tracing::warn!("answer headers added after the first answer message are not sent");
        }
    }

    pub(super) fn commit(&mut self) {
        if let (Some(metadata), Some(sender)) = (self.metadata.take(), self.sender.take()) {
            // The receiver is gone only when the client is: nobody to send them to.
            let _ = sender.send(metadata);
        }
    }
}

/// The error for a failed request stream: the client's own fault is INVALID_ARGUMENT, a message
/// over the size limit keeps tonic's code, a reset is a cancellation.
pub(super) fn stream_error(function: &str, status: &Status) -> CallError {
    let code = match status.code() {
        tonic::Code::Cancelled => return CallError::Cancelled,
        tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::DataLoss => tonic::Code::InvalidArgument,
        code => code,
    };
    CallError::Stream { function: function.to_owned(), code, message: status.message().to_owned() }
}

/// Runs a call's job, turning a panic of the host's own code into an error that names the call:
/// the client must never take a partial answer followed by OK for a whole one.
pub(super) fn run_job<R>(label: &str, job: impl FnOnce() -> Result<R, CallError>) -> Result<R, CallError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        tracing::error!(call = label, "the call's thread panicked: {what}");
        Err(CallError::Internal(format!("{label}: the host failed while running this call")))
    })
}

/// The error of a call whose client neither sent nor read for `stall`.
pub(super) fn stalled(stall: Duration) -> CallError {
    CallError::Stalled { seconds: stall.as_secs_f64() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_request_stream_keeps_the_clients_code_unless_it_is_the_clients_fault() {
        let code = |status: Status| stream_error("F", &status).to_status().code();
        assert_eq!(code(Status::out_of_range("message too large")), tonic::Code::OutOfRange);
        assert_eq!(code(Status::resource_exhausted("too large")), tonic::Code::ResourceExhausted);
        for bad in [Status::internal("h2 protocol error"), Status::unknown("?"), Status::data_loss("cut")] {
            assert_eq!(code(bad), tonic::Code::InvalidArgument);
        }
        assert!(matches!(stream_error("F", &Status::cancelled("reset")), CallError::Cancelled));
        assert!(
            stream_error("F", &Status::internal("bad frame")).to_string().starts_with("F: the request stream failed")
        );
    }

    #[test]
    fn a_panicking_job_becomes_an_internal_error_naming_the_call() {
        let error = run_job::<()>("SumOfRows", || panic!("index out of bounds")).unwrap_err();
        assert!(matches!(&error, CallError::Internal(message) if message.contains("SumOfRows")), "{error}");
        assert_eq!(run_job("F", || Ok(3)).expect("no panic"), 3);
    }
}
