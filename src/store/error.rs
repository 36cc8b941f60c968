//! The store's one error type, classified so the API can pick a status code.

use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// Why a store call failed. Messages are for logs: they may hold database
/// detail, but never a secret (secrets never reach the store).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot answer now (down, unreachable, locked, full);
    /// retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write.
    #[error("conflicting write: {0}")]
    Conflict(String),
    /// Stored data that does not parse back into the domain.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database URL or options are unusable.
    #[error("database configuration: {0}")]
    Config(String),
    /// Anything else.
    #[error("database error: {0}")]
    Internal(String),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
            return Self::Conflict(detail);
        }
        let message = err.to_string();
        match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(message),
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
                if is_unavailable(e) =>
            {
                Self::Unavailable(message)
            }
            _ => Self::Internal(message),
        }
    }
}

/// Whether SQLite refused a lock (SQLITE_BUSY or SQLITE_LOCKED, with any
/// extended code).
pub(crate) fn is_busy(err: &DbErr) -> bool {
    let driver = match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match &**driver {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<u32>().ok())
            .is_some_and(|code| matches!(code & 0xFF, 5 | 6)),
        _ => false,
    }
}

/// Whether a driver error means "the database is not answering" rather than
/// "this statement is wrong".
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs for connection loss, shutdown, missing database and
/// resource exhaustion; SQLite primary codes for busy, locked, read-only,
/// I/O error, corrupt, full, cannot open and not-a-database.
/// PostgreSQL SQLSTATEs are always five characters; SQLite's extended result
/// codes are at most four digits.
fn unavailable_code(code: &str) -> bool {
    if code.len() == 5 {
        return code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || code == "3D000";
    }
    code.parse::<u32>()
        .is_ok_and(|sqlite| matches!(sqlite & 0xFF, 5 | 6 | 8 | 10 | 11 | 13 | 14 | 26))
}

#[cfg(test)]
mod tests {
    use super::unavailable_code;

    #[test]
    fn classifies_codes() {
        for code in [
            "5", "517", "6", "13", "14", "3850", "08006", "57P01", "3D000", "53300",
        ] {
            assert!(unavailable_code(code), "{code}");
        }
        for code in ["19", "2067", "1555", "23505", "42P01", "22001", "40001"] {
            assert!(!unavailable_code(code), "{code}");
        }
    }
}
