//! Use cases: what tokend does, without knowing how a request arrived
//! (no tonic) or how rows are stored (no sea-orm).

pub mod authenticate;
pub mod cache;
pub mod mint;
pub mod retention;
pub mod throttle;
pub mod usage;
