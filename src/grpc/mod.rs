//! Everything that knows tonic, prost and http: the `ApiTokenService`
//! (extract -> one use case -> convert), credentials from metadata, request
//! validation, answer conversion, the one error mapping, the strict codec
//! and the per-call guard (which authenticates); and Envoy's ext_authz
//! `Authorization` service over the same use cases (`ext_authz`).

pub mod codec;
mod convert;
pub mod credentials;
pub mod error;
pub mod ext_authz;
pub mod guard;
pub mod health;
mod redact;
mod service;
pub mod validate;

pub use service::TokenService;
