//! The API's one error type and its one mapping to `tonic::Status`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::FieldViolation;
use crate::domain::permission::Denied;
use crate::service::authenticate::AuthError;
use crate::store::StoreError;

/// Why a call failed, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No usable caller token. One message for every cause.
    #[error("missing or invalid API token")]
    Unauthenticated,
    /// The caller's roles do not allow this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The target does not exist or the caller may not see it.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule refused the write.
    #[error("{0}")]
    AlreadyExists(String),
    /// Request fields break the contract's rules.
    #[error("invalid argument: {}", join(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The database cannot answer now.
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    /// Too many failed authentications from the caller's address.
    #[error("{0}")]
    Throttled(String),
    /// A bug or corrupt data; details go to the log only.
    #[error("internal error")]
    Internal(String),
    /// Part of the contract not built yet.
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
}

fn join(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// A single-field INVALID_ARGUMENT.
    pub fn invalid(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }

    /// The answer to a refused authorization on `what`.
    pub fn denied(denied: Denied, what: &'static str, action: &str) -> Self {
        match denied {
            Denied::NotVisible => Self::NotFound(what),
            Denied::Insufficient => Self::PermissionDenied(format!(
                "the caller's roles do not allow {action} on this {what}"
            )),
        }
    }
}

impl From<Vec<FieldViolation>> for ApiError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument(violations)
    }
}

impl From<FieldViolation> for ApiError {
    fn from(violation: FieldViolation) -> Self {
        Self::invalid(violation)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::Unavailable(err),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unauthenticated => Self::Unauthenticated,
            throttled @ AuthError::Throttled { .. } => Self::Throttled(throttled.to_string()),
            AuthError::Store(store) => store.into(),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let message = err.to_string();
        match err {
            ApiError::Unauthenticated => Status::unauthenticated(message),
            ApiError::PermissionDenied(_) => Status::permission_denied(message),
            ApiError::NotFound(_) => Status::not_found(message),
            ApiError::AlreadyExists(_) => Status::already_exists(message),
            ApiError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::Unavailable(_) => Status::unavailable(message),
            ApiError::Throttled(_) => Status::resource_exhausted(message),
            ApiError::Internal(_) => Status::internal(message),
            ApiError::Unimplemented(_) => Status::unimplemented(message),
        }
    }
}

/// Logs a failed call at a level fitting its cause and converts it. Client
/// errors are debug-level; server-side failures carry their detail to the log
/// and never to the client.
pub fn respond<T>(result: Result<T, ApiError>) -> Result<tonic::Response<T>, Status> {
    match result {
        Ok(value) => Ok(tonic::Response::new(value)),
        Err(err) => {
            match &err {
                ApiError::Internal(detail) => tracing::error!(error = %detail, "call failed"),
                ApiError::Unavailable(source) => tracing::warn!(error = %source, "call failed"),
                other => tracing::debug!(error = %other, "call refused"),
            }
            Err(err.into())
        }
    }
}
