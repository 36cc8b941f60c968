//! tokend: a gRPC service that owns API tokens.
//!
//! A request flows one way: `grpc` (transport: tonic, prost, http) ->
//! `service` (use cases) -> `store` (sea-orm) and `domain` (pure types and
//! rules). `telemetry` observes; `server` wires the parts together.

pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;

/// Code generated from `proto/tokend/v1` by `build.rs`.
pub mod pb {
    tonic::include_proto!("tokend.v1");
}
