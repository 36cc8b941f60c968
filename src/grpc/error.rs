//! The one mapping from the use cases' [`Error`] to `tonic::Status`: the
//! contract's error table.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::service::Error;

/// The status a failed call answers.
pub fn status(err: Error) -> Status {
    let message = err.to_string();
    match err {
        Error::Unauthenticated => Status::unauthenticated(message),
        Error::Throttled { .. } => Status::resource_exhausted(message),
        Error::PermissionDenied(_) => Status::permission_denied(message),
        Error::NotFound(_) => Status::not_found(message),
        Error::AlreadyExists(_) => Status::already_exists(message),
        Error::InvalidArgument(violations) => {
            let mut details = ErrorDetails::new();
            for v in violations {
                details.add_bad_request_violation(v.field, v.description);
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        Error::Unavailable(_) => Status::unavailable(message),
        Error::Internal(_) => Status::internal(message),
    }
}

/// Logs a failed call at a level fitting its cause and converts it. Client
/// errors are debug-level; server-side failures carry their detail to the
/// log and never to the client.
pub fn respond<T>(result: Result<T, Error>) -> Result<tonic::Response<T>, Status> {
    match result {
        Ok(value) => Ok(tonic::Response::new(value)),
        Err(err) => {
            log(&err);
            Err(status(err))
        }
    }
}

/// Logs why a call failed.
pub fn log(err: &Error) {
    match err {
        Error::Internal(detail) => tracing::error!(error = %detail, "call failed"),
        Error::Unavailable(source) => tracing::warn!(error = %source, "call failed"),
        other => tracing::debug!(error = %other, "call refused"),
    }
}
