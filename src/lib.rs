//! tokend: a gRPC service that owns API tokens.

pub mod domain;

/// Code generated from `proto/tokend/v1` by `build.rs`.
pub mod pb {
    tonic::include_proto!("tokend.v1");
}
