//! Request validation as the handlers run it before the database: the first
//! byte picks an RPC, the rest is decoded as its protobuf request (so the
//! fuzzer explores the wire format and the validators together). Never
//! panics; every refusal is INVALID_ARGUMENT naming at least one field, and
//! what is accepted respects the contract's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tokend::domain::ids::EntityId;
use tokend::domain::token::{RoleSet, TokenType};
use tokend::grpc::validate;
use tokend::pb;
use tokend::service::Error;

const NOW: i64 = 1_764_000_000;

fn refused(err: Error) {
    match err {
        Error::InvalidArgument(violations) => {
            assert!(!violations.is_empty());
            assert!(violations.iter().all(|v| !v.field.is_empty()));
        }
        other => panic!("validation answered {other:?}, not INVALID_ARGUMENT"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => {
            if let Ok(req) = pb::ListApiTokensRequest::decode(bytes) {
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
            if let Ok(req) = pb::CreateApiTokenRequest::decode(bytes) {
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
            if let Ok(req) = pb::UpdateApiTokenRequest::decode(bytes) {
                if let Err(e) = validate::path(&req.organization_id, &req.token_id)
                    .and_then(|_| validate::update(&req))
                {
                    refused(e);
                }
            }
        }
        3 => {
            if let Ok(req) = pb::UpdateApiTokenRolesRequest::decode(bytes) {
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
            if let Ok(req) = pb::RotateApiTokenRequest::decode(bytes) {
                match validate::path(&req.organization_id, &req.token_id)
                    .and_then(|_| validate::rotate(&req))
                {
                    Ok(grace) => assert!((0..=86_400).contains(&grace.seconds())),
                    Err(e) => refused(e),
                }
            }
        }
        5 => {
            if let Ok(req) = pb::ListAuditEventsRequest::decode(bytes) {
                if let Err(e) = validate::path(&req.organization_id, &req.token_id)
                    .and_then(|_| validate::audit_page(&req))
                {
                    refused(e);
                }
            }
        }
        _ => {
            if let Ok(req) = pb::GetApiTokenRequest::decode(bytes) {
                if let Err(e) = validate::path(&req.organization_id, &req.token_id) {
                    refused(e);
                }
            }
        }
    }
});
