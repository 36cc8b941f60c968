//! Pure types and rules of tokend: no I/O, no tonic, no sea-orm.
//!
//! Every type here is parsed once at the edge ("parse, don't validate"), so
//! code that holds one never re-checks it.

pub mod audit;
pub mod credential;
pub mod error;
pub mod ids;
pub mod list;
pub mod net;
pub mod permission;
pub mod role;
pub mod secret;
pub mod subject;
pub mod time;
pub mod token;

pub use error::{FieldViolation, Violations};
