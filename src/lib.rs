//! tokend: a gRPC service that owns API tokens.

pub mod api;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod codec;
pub mod commands;
pub mod config;
pub mod domain;
pub mod guard;
pub mod issue;
pub mod metrics;
pub mod net;
pub mod retention;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod usage;

/// Code generated from `proto/tokend/v1` by `build.rs`.
pub mod pb {
    tonic::include_proto!("tokend.v1");
}
