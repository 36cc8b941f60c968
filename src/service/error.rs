//! The one error of the use cases, in the contract's terms. The transport
//! maps it to its own status (gRPC: `grpc::error`; the mapping table is the
//! contract's error table).

use crate::domain::FieldViolation;
use crate::domain::permission::Denied;
use crate::store::StoreError;

/// Why a use case failed, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable caller token. One message for every cause.
    #[error("missing or invalid API token")]
    Unauthenticated,
    /// Failed authentication from an address past the failure threshold.
    #[error("too many failed authentications from this address; retry in {retry_after_seconds}s")]
    Throttled {
        /// The throttle window, as a hint.
        retry_after_seconds: u64,
    },
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
    /// A bug or corrupt data; details go to the log only.
    #[error("internal error")]
    Internal(String),
}

fn join(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
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

impl From<Vec<FieldViolation>> for Error {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument(violations)
    }
}

impl From<FieldViolation> for Error {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::Unavailable(err),
            other => Self::Internal(other.to_string()),
        }
    }
}
