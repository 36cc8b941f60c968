//! Generates the tonic/prost code for `proto/tokend/v1` and a FileDescriptorSet
//! (with imports) used by reflection and by `tokend descriptor`.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    // A vendored protoc, so a fresh machine needs only the Rust toolchain.
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("tokend_descriptor.bin"))
        // Requests that do not decode are INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::grpc::codec::StrictCodec")
        // Messages that carry a secret get a hand-written Debug that
        // redacts it (src/grpc/redact.rs): a stray `{:?}` must not log one.
        .skip_debug(["tokend.v1.ApiToken", "tokend.v1.ApiTokenSecret"])
        // google/rpc is compiled only so that its messages land in the
        // descriptor set: grpcurl and Envoy then render the BadRequest
        // details of INVALID_ARGUMENT as JSON instead of raw bytes. The Rust
        // types come from tonic-types.
        .compile_protos(
            &[
                "proto/tokend/v1/api_token.proto",
                "proto/google/rpc/status.proto",
                "proto/google/rpc/error_details.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
