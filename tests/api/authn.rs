//! Authentication on every RPC, driven by the service descriptor: each RPC
//! of `tokend.v1.ApiTokenService` in `FILE_DESCRIPTOR_SET` is called raw
//! (bytes in, bytes out) with every kind of unusable credential and must
//! answer UNAUTHENTICATED with one message. A new RPC fails
//! [`request_for`] until someone writes its request here, so it cannot be
//! left out. Only health and reflection answer without a token, and the
//! server offers nothing else.

use crate::helpers::Secret as _;
use std::collections::BTreeSet;

use prost::Message;
use prost::bytes::{Buf, BufMut};
use tokend::pb;
use tokend::pb::api_token_role::EntityType;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_reflection::pb::{v1, v1alpha};

use crate::both_databases;
use crate::helpers::{
    Db, ORG, TestApp, at, eventually, now, unknown_secret, with_bearer, workspace_token,
};

both_databases!(
    every_rpc_refuses_every_unusable_credential_alike,
    only_health_and_reflection_answer_without_a_token,
);

const SERVICE: &str = "tokend.v1.ApiTokenService";
const DAY: i64 = 86_400;

/// The services a caller may use without a token: health (probes) and
/// reflection (grpcurl). Envoy's ext_authz `Check` is served too (it
/// authenticates the HTTP request it describes, not its caller, and only
/// admitted peers may call it: tests/api/ext_authz.rs) but not listed by
/// reflection: envoy-types ships no descriptor set.
const EXEMPT: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// One RPC as the descriptor declares it.
#[derive(Debug)]
struct Rpc {
    name: String,
    input_type: String,
    streaming: bool,
}

/// The RPCs of [`SERVICE`], in declaration order, from the descriptor set the
/// server itself serves by reflection.
fn rpcs() -> Vec<Rpc> {
    let set = prost_types::FileDescriptorSet::decode(tokend::server::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let (package, name) = SERVICE.rsplit_once('.').expect("qualified name");
    let service = set
        .file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| &f.service)
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("{SERVICE} is not in the descriptor set"));
    service
        .method
        .iter()
        .map(|m| Rpc {
            name: m.name().to_owned(),
            input_type: m.input_type().trim_start_matches('.').to_owned(),
            streaming: m.client_streaming() || m.server_streaming(),
        })
        .collect()
}

/// Every service declared in the descriptor set, qualified.
fn declared_services() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(tokend::server::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    set.file
        .iter()
        .flat_map(|f| {
            f.service
                .iter()
                .map(|s| format!("{}.{}", f.package(), s.name()))
        })
        .collect()
}

/// What the requests point at: tokens that exist, so that a request that got
/// past authentication would succeed (the valid caller proves it).
struct Fixture {
    /// A WORKSPACE token of `ws-authn` that Get, Update, UpdateRoles, Rotate
    /// and ListAuditEvents name.
    victim: String,
    /// A token that Delete names.
    doomed: String,
    /// A secret Lookup asks about (the bootstrap one, which nothing rotates).
    looked_up: String,
}

/// The request message type and an encoded, minimal valid request for RPC
/// `method`; `None` for an RPC this table does not know yet.
fn request_for(method: &str, fx: &Fixture) -> Option<(&'static str, Vec<u8>)> {
    let org = || ORG.to_owned();
    let victim = || fx.victim.clone();
    Some(match method {
        "GetApiToken" => (
            "tokend.v1.GetApiTokenRequest",
            pb::GetApiTokenRequest {
                organization_id: org(),
                token_id: victim(),
            }
            .encode_to_vec(),
        ),
        "ListApiTokens" => (
            "tokend.v1.ListApiTokensRequest",
            pb::ListApiTokensRequest {
                organization_id: org(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        "LookupApiToken" => (
            "tokend.v1.ApiTokenSecret",
            pb::ApiTokenSecret {
                token: fx.looked_up.clone(),
            }
            .encode_to_vec(),
        ),
        "CreateApiToken" => (
            "tokend.v1.CreateApiTokenRequest",
            workspace_token("created by authn", "ws-authn").encode_to_vec(),
        ),
        "UpdateApiToken" => (
            "tokend.v1.UpdateApiTokenRequest",
            pb::UpdateApiTokenRequest {
                organization_id: org(),
                token_id: victim(),
                description: Some("changed".into()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        "UpdateApiTokenRoles" => (
            "tokend.v1.UpdateApiTokenRolesRequest",
            pb::UpdateApiTokenRolesRequest {
                organization_id: org(),
                token_id: victim(),
                roles: vec![pb::ApiTokenRole {
                    entity_type: EntityType::Workspace as i32,
                    entity_id: "ws-authn".into(),
                    role: "WORKSPACE_OPERATOR".into(),
                    deployment_id: None,
                }],
            }
            .encode_to_vec(),
        ),
        "RotateApiToken" => (
            "tokend.v1.RotateApiTokenRequest",
            pb::RotateApiTokenRequest {
                organization_id: org(),
                token_id: victim(),
                grace_period_seconds: 0,
            }
            .encode_to_vec(),
        ),
        "DeleteApiToken" => (
            "tokend.v1.DeleteApiTokenRequest",
            pb::DeleteApiTokenRequest {
                organization_id: org(),
                token_id: fx.doomed.clone(),
            }
            .encode_to_vec(),
        ),
        "ListAuditEvents" => (
            "tokend.v1.ListAuditEventsRequest",
            pb::ListAuditEventsRequest {
                organization_id: org(),
                token_id: victim(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        _ => return None,
    })
}

/// Every RPC with its request; fails for an RPC [`request_for`] does not
/// know, or whose request type changed, or that streams.
fn every_call(fx: &Fixture) -> Vec<(String, Vec<u8>)> {
    let rpcs = rpcs();
    assert!(!rpcs.is_empty(), "{SERVICE} declares no RPC");
    rpcs.into_iter()
        .map(|rpc| {
            assert!(
                !rpc.streaming,
                "{}: a streaming RPC needs its own call here",
                rpc.name
            );
            let (input_type, body) = request_for(&rpc.name, fx).unwrap_or_else(|| {
                panic!(
                    "{SERVICE}/{} is not in authn.rs's request_for: add a minimal valid request \
                     for it, so that its authentication is tested",
                    rpc.name
                )
            });
            assert_eq!(input_type, rpc.input_type, "{}: request type", rpc.name);
            (rpc.name, body)
        })
        .collect()
}

/// Passes request and response bodies through as bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// One unary call of `/SERVICE/method` with `body`, carrying each of
/// `authorization` as an `authorization` header (none when empty).
async fn call(
    channel: &Channel,
    method: &str,
    body: Vec<u8>,
    authorization: &[String],
) -> Result<Vec<u8>, Status> {
    let mut request = Request::new(body);
    for value in authorization {
        let value = MetadataValue::try_from(value.as_str()).expect("an ASCII header value");
        request.metadata_mut().append("authorization", value);
    }
    let path = format!("/{SERVICE}/{method}").parse().expect("a path");
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(request, path, Raw).await.map(|r| r.into_inner())
}

async fn channel(app: &TestApp) -> Channel {
    Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

/// An ORGANIZATION_OWNER token: a caller that every RPC would serve.
async fn owner(app: &TestApp, name: &str) -> pb::ApiToken {
    app.create(pb::CreateApiTokenRequest {
        organization_id: ORG.into(),
        name: name.into(),
        r#type: pb::api_token::Type::Organization as i32,
        role: "ORGANIZATION_OWNER".into(),
        ..Default::default()
    })
    .await
}

/// An owner whose secret has authenticated once (so it sits in the
/// credential cache) before `revoke` takes it away.
async fn used_then_revoked(
    app: &TestApp,
    name: &str,
    revoke: impl AsyncFnOnce(&str) -> Result<(), Status>,
) -> String {
    let token = owner(app, name).await;
    app.lookup_as(&token.secret(), &app.secret)
        .await
        .unwrap_or_else(|e| panic!("{name} works before it is revoked: {e:?}"));
    revoke(&token.id)
        .await
        .unwrap_or_else(|e| panic!("revoke {name}: {e:?}"));
    token.secret()
}

/// Every token of the organization as the bootstrap owner sees it, without
/// the usage fields that authenticating changes.
async fn snapshot(app: &TestApp) -> Vec<pb::ApiToken> {
    let listed = app
        .list(pb::ListApiTokensRequest {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("list");
    listed
        .tokens
        .into_iter()
        .map(|t| pb::ApiToken {
            last_used_at: None,
            ..t
        })
        .collect()
}

/// The classes of unusable credential, each as the `authorization` values
/// it sends.
async fn unusable_credentials(app: &TestApp) -> Vec<(&'static str, Vec<String>)> {
    let client = app.client.clone();
    let disabled = used_then_revoked(app, "disabled", async |id| {
        let request = app.req(pb::UpdateApiTokenRequest {
            organization_id: ORG.into(),
            token_id: id.into(),
            enabled: Some(false),
            ..Default::default()
        });
        client.clone().update_api_token(request).await.map(drop)
    })
    .await;
    let rotated = used_then_revoked(app, "rotated", async |id| {
        let request = app.req(pb::RotateApiTokenRequest {
            organization_id: ORG.into(),
            token_id: id.into(),
            grace_period_seconds: 0,
        });
        client.clone().rotate_api_token(request).await.map(drop)
    })
    .await;
    // A grace period that has ended: the old secret is still stored, and
    // refused because of its end, not because it is gone.
    let graced = used_then_revoked(app, "rotated with grace", async |id| {
        let request = app.req(pb::RotateApiTokenRequest {
            organization_id: ORG.into(),
            token_id: id.into(),
            grace_period_seconds: 1,
        });
        client.clone().rotate_api_token(request).await.map(drop)
    })
    .await;
    eventually("the 1 s grace to end", || async {
        app.lookup_as(&graced, &app.secret)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let deleted = used_then_revoked(app, "deleted", async |id| {
        let request = app.req(pb::DeleteApiTokenRequest {
            organization_id: ORG.into(),
            token_id: id.into(),
        });
        client.clone().delete_api_token(request).await.map(drop)
    })
    .await;
    let expired = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(now() - 2 * DAY)),
            token_expiry_period_in_days: Some(1),
            ..owner_request("expired")
        })
        .await
        .secret();
    let not_yet_valid = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(now() + DAY)),
            ..owner_request("not yet valid")
        })
        .await
        .secret();

    let good = app.secret.clone();
    let (head, key) = good.rsplit_once('.').expect("a secret has dots");
    let flipped = if key.starts_with('A') { 'B' } else { 'A' };
    let bad_checksum = format!("{head}.{flipped}{}", &key[1..]);
    let wrong_prefix = format!("dt0c01{}", &good[good.find('.').expect("a prefix")..]);
    let bearer = |secret: &str| vec![format!("Bearer {secret}")];
    vec![
        ("no authorization header", vec![]),
        ("empty header", vec![String::new()]),
        ("Bearer alone", vec!["Bearer".into()]),
        ("another scheme", vec![format!("Basic {good}")]),
        ("no scheme", vec![good.clone()]),
        ("not a secret", bearer("garbage")),
        ("bad checksum", bearer(&bad_checksum)),
        ("another prefix", bearer(&wrong_prefix)),
        ("trailing text", vec![format!("Bearer {good} extra")]),
        (
            "two authorization headers",
            vec![format!("Bearer {good}"), format!("Bearer {good}")],
        ),
        ("well-formed but unknown", bearer(&unknown_secret())),
        ("disabled", bearer(&disabled)),
        ("expired", bearer(&expired)),
        ("not yet valid", bearer(&not_yet_valid)),
        ("rotated out, grace 0", bearer(&rotated)),
        ("rotated out, grace ended", bearer(&graced)),
        ("deleted", bearer(&deleted)),
    ]
}

fn owner_request(name: &str) -> pb::CreateApiTokenRequest {
    pb::CreateApiTokenRequest {
        organization_id: ORG.into(),
        name: name.into(),
        r#type: pb::api_token::Type::Organization as i32,
        role: "ORGANIZATION_OWNER".into(),
        ..Default::default()
    }
}

async fn every_rpc_refuses_every_unusable_credential_alike(db: Db) {
    let app = TestApp::spawn(db).await;
    let fx = Fixture {
        victim: app.create(workspace_token("victim", "ws-authn")).await.id,
        doomed: app.create(workspace_token("doomed", "ws-authn")).await.id,
        looked_up: app.secret.clone(),
    };
    let credentials = unusable_credentials(&app).await;
    let channel = channel(&app).await;
    let before = snapshot(&app).await;

    let mut messages: Vec<(String, String)> = Vec::new();
    let mut wrong = Vec::new();
    for (rpc, body) in every_call(&fx) {
        for (what, authorization) in &credentials {
            let case = format!("{rpc} with {what}");
            match call(&channel, &rpc, body.clone(), authorization).await {
                Err(status) if status.code() == Code::Unauthenticated => {
                    messages.push((case, status.message().to_owned()))
                }
                Err(status) => wrong.push(format!("{case}: {status:?}")),
                Ok(_) => wrong.push(format!("{case}: OK")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "expected UNAUTHENTICATED:\n{}",
        wrong.join("\n")
    );
    let (first_case, first) = &messages[0];
    assert!(!first.is_empty(), "{first_case}: an empty message");
    for (case, message) in &messages {
        assert_eq!(message, first, "{case} differs from {first_case}");
    }
    assert_eq!(
        before,
        snapshot(&app).await,
        "a refused call changed a token"
    );

    // The same requests from a valid caller succeed: each one reached
    // authentication and would have been served.
    let bootstrap = vec![format!("Bearer {}", app.secret)];
    for (rpc, body) in every_call(&fx) {
        call(&channel, &rpc, body, &bootstrap)
            .await
            .unwrap_or_else(|e| panic!("{rpc} as the bootstrap owner: {e:?}"));
    }
    app.stop().await;
}

/// The services reflection lists, v1 and v1alpha together (each reflection
/// service lists itself).
async fn reflected_services(channel: &Channel) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut v1_client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = v1_client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection without a token")
        .into_inner();
    match answers
        .message()
        .await
        .expect("v1 answer")
        .and_then(|a| a.message_response)
    {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            names.extend(list.service.into_iter().map(|s| s.name))
        }
        other => panic!("v1 ListServices: {other:?}"),
    }
    let mut alpha_client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = alpha_client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection without a token")
        .into_inner();
    match answers
        .message()
        .await
        .expect("v1alpha answer")
        .and_then(|a| a.message_response)
    {
        Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            names.extend(list.service.into_iter().map(|s| s.name))
        }
        other => panic!("v1alpha ListServices: {other:?}"),
    }
    names
}

/// The server offers [`SERVICE`] (every RPC of which needs a token, above)
/// and the [`EXEMPT`] services, nothing else; each exempt one answers a
/// caller with no token.
async fn only_health_and_reflection_answer_without_a_token(db: Db) {
    let app = TestApp::spawn(db).await;
    let channel = channel(&app).await;
    let offered = reflected_services(&channel).await;
    let exempt: BTreeSet<String> = EXEMPT.iter().map(|s| (*s).to_owned()).collect();
    let expected: BTreeSet<String> = exempt.iter().cloned().chain([SERVICE.to_owned()]).collect();
    assert_eq!(
        offered, expected,
        "a service was added or removed: decide whether it needs a token, and test it here"
    );
    // tokend's own descriptor declares no other service that reflection
    // might have missed.
    assert_eq!(declared_services(), BTreeSet::from([SERVICE.to_owned()]));

    // Health answers without a token (reflection just did).
    let status = app.health_of("").await.expect("health without a token");
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    // A caller with a token gets the same from health: exempt, not refused.
    let mut health = app.health.clone();
    health
        .check(with_bearer(
            &unknown_secret(),
            tonic_health::pb::HealthCheckRequest::default(),
        ))
        .await
        .expect("health ignores credentials");
    app.stop().await;
}
