//! Requests as the handlers receive them: the first byte picks an RPC, the
//! rest is its request body, decoded by the production strict codec
//! (`grpc::codec::StrictCodec`, under the default message cap, through
//! tonic's own gRPC framing) and then validated by the functions the
//! handler calls (`grpc::validate`, and Lookup's `presented_secret`).
//!
//! With the first byte below 128 the rest is one message, framed here; at
//! 128 or more it is the body as sent, framing and all. Never panics; a body
//! yields at most one message; a framed message that does not decode is
//! INVALID_ARGUMENT (never tonic's INTERNAL), one over the cap OUT_OF_RANGE;
//! what decodes is what prost decodes; every refusal of validation is
//! INVALID_ARGUMENT naming at least one field, and what is accepted
//! respects the contract's bounds.
#![no_main]

use std::sync::LazyLock;

use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use prost::bytes::Bytes;
use tokend::config::Settings;
use tokend::domain::ids::EntityId;
use tokend::domain::token::{RoleSet, TokenType};
use tokend::grpc::codec::StrictCodec;
use tokend::grpc::validate;
use tokend::pb;
use tokend::service::Error;
use tokend::service::lookup::presented_secret;
use tonic::Code;
use tonic::codec::{Codec, Streaming};

const NOW: i64 = 1_764_000_000;

/// The settings `tokend serve` runs with by default (message cap, prefix).
static SETTINGS: LazyLock<Settings> =
    LazyLock::new(|| Settings::from_command_line(["serve"]).expect("default settings"));

fn refused(err: Error) {
    match err {
        Error::InvalidArgument(violations) => {
            assert!(!violations.is_empty());
            assert!(violations.iter().all(|v| !v.field.is_empty()));
        }
        other => panic!("validation answered {other:?}, not INVALID_ARGUMENT"),
    }
}

/// `bytes` as one gRPC message (flag 0, exact length).
fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + 5);
    body.push(0);
    body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    body.extend_from_slice(bytes);
    body
}

/// Decodes `body` as the server does; `None` when it is refused. Checks the
/// decoder's promises on the way.
fn decode<T>(body: &[u8], framed_here: bool, payload: &[u8]) -> Option<T>
where
    T: Message + Default + PartialEq + std::fmt::Debug + Send + 'static,
{
    let cap = SETTINGS.limits.max_message_size;
    let decoder = StrictCodec::<pb::ApiToken, T>::default().decoder();
    let mut stream = Streaming::new_request(
        decoder,
        Full::new(Bytes::copy_from_slice(body)),
        None,
        Some(cap),
    );
    let first = futures_executor::block_on(stream.message());
    let message = match first {
        Ok(Some(message)) => message,
        Ok(None) => {
            assert!(!framed_here, "a framed message was not decoded");
            return None;
        }
        Err(status) => {
            if framed_here && payload.len() > cap {
                assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
            } else if framed_here {
                assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
                assert!(T::decode(payload).is_err(), "refused what prost decodes");
            }
            return None;
        }
    };
    if framed_here {
        assert!(payload.len() <= cap);
        assert_eq!(T::decode(payload).as_ref(), Ok(&message));
    }
    // A unary call carries one message: a second is refused, never decoded.
    match futures_executor::block_on(stream.message()) {
        Ok(None) => {}
        Ok(Some(_)) => panic!("a second request message was decoded"),
        Err(status) => assert!(!framed_here, "one framed message, then {status:?}"),
    }
    Some(message)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let framed_here = which < 128;
    let body = if framed_here {
        frame(payload)
    } else {
        payload.to_vec()
    };
    let body = body.as_slice();
    match which % 8 {
        0 => {
            if let Some(req) = decode::<pb::ListApiTokensRequest>(body, framed_here, payload) {
                match validate::organization(&req.organization_id)
                    .and_then(|_| validate::list_query(&req))
                {
                    Ok(query) => {
                        assert!(query.page.limit() <= 1000);
                        assert!(query.filter.dag_tags.len() <= req.dag_tags.len());
                    }
                    Err(e) => refused(e),
                }
            }
        }
        1 => {
            if let Some(req) = decode::<pb::CreateApiTokenRequest>(body, framed_here, payload) {
                let org = match validate::organization(&req.organization_id) {
                    Ok(org) => org,
                    Err(e) => return refused(e),
                };
                match validate::create(&req, org, NOW) {
                    Ok(token) => {
                        assert!(!token.name.as_str().trim().is_empty());
                        if let Some(end) = token.end_at() {
                            assert!(end > token.start_at);
                        }
                    }
                    Err(e) => refused(e),
                }
            }
        }
        2 => {
            if let Some(req) = decode::<pb::UpdateApiTokenRequest>(body, framed_here, payload)
                && let Err(e) = validate::path(&req.organization_id, &req.token_id)
                    .and_then(|_| validate::update(&req))
            {
                refused(e);
            }
        }
        3 => {
            if let Some(req) = decode::<pb::UpdateApiTokenRolesRequest>(body, framed_here, payload)
            {
                let org = match validate::path(&req.organization_id, &req.token_id) {
                    Ok((org, _)) => org,
                    Err(e) => return refused(e),
                };
                let bindings = match validate::roles(&req) {
                    Ok(bindings) => bindings,
                    Err(e) => return refused(e),
                };
                for (token_type, entity) in [
                    (TokenType::Organization, req.organization_id.as_str()),
                    (TokenType::Workspace, "ws-1"),
                    (TokenType::Deployment, "dep-1"),
                ] {
                    let Ok(entity) = EntityId::parse("entityId", entity) else {
                        continue;
                    };
                    match RoleSet::parse(&org, token_type, &entity, bindings.clone()) {
                        Ok(set) => assert!(!set.bindings().is_empty()),
                        Err(v) => assert!(!v.field.is_empty()),
                    }
                }
            }
        }
        4 => {
            if let Some(req) = decode::<pb::RotateApiTokenRequest>(body, framed_here, payload) {
                match validate::path(&req.organization_id, &req.token_id)
                    .and_then(|_| validate::rotate(&req))
                {
                    Ok(grace) => assert!((0..=86_400).contains(&grace.seconds())),
                    Err(e) => refused(e),
                }
            }
        }
        5 => {
            if let Some(req) = decode::<pb::ListAuditEventsRequest>(body, framed_here, payload)
                && let Err(e) = validate::path(&req.organization_id, &req.token_id)
                    .and_then(|_| validate::audit_page(&req))
            {
                refused(e);
            }
        }
        6 => {
            if let Some(req) = decode::<pb::GetApiTokenRequest>(body, framed_here, payload)
                && let Err(e) = validate::path(&req.organization_id, &req.token_id)
            {
                refused(e);
            }
        }
        _ => {
            if let Some(req) = decode::<pb::ApiTokenSecret>(body, framed_here, payload) {
                let prefix = &SETTINGS.token_prefix;
                match presented_secret(prefix, &req.token) {
                    Ok(secret) => assert_eq!(secret.reveal(prefix).expose(), req.token),
                    Err(e) => refused(e),
                }
            }
        }
    }
});
