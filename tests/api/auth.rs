//! Authentication: every RPC refuses a missing or unusable bearer token with
//! UNAUTHENTICATED and one message for every cause; a caller's use is
//! recorded with its address.

use crate::helpers::Secret as _;
use std::net::{IpAddr, SocketAddr};

use tokend::pb;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};

use crate::both_databases;
use crate::helpers::{
    Db, ORG, TestApp, assert_code, at, eventually, now, unknown_secret, with_bearer,
    workspace_token,
};

const DAY: i64 = 86_400;

/// A request whose `authorization` metadata is exactly `value` (none when
/// `None`).
fn authorized<T>(value: Option<&str>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(value) = value {
        let value = MetadataValue::try_from(value).expect("header value");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Calls Get, List, Lookup and Create with `authorization: value`, each with
/// a body that would succeed for a valid caller, and returns the four
/// results.
async fn call_every_rpc(
    app: &TestApp,
    value: Option<&str>,
) -> Vec<(&'static str, Result<(), Status>)> {
    let mut client = app.client.clone();
    let get = client
        .get_api_token(authorized(
            value,
            pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: app.token_id.clone(),
            },
        ))
        .await
        .map(drop);
    let list = client
        .list_api_tokens(authorized(
            value,
            pb::ListApiTokensRequest {
                organization_id: ORG.into(),
                ..Default::default()
            },
        ))
        .await
        .map(drop);
    let lookup = client
        .lookup_api_token(authorized(
            value,
            pb::ApiTokenSecret {
                token: app.secret.clone(),
            },
        ))
        .await
        .map(drop);
    let create = client
        .create_api_token(authorized(
            value,
            workspace_token("should-not-exist", "ws1"),
        ))
        .await
        .map(drop);
    vec![
        ("Get", get),
        ("List", list),
        ("Lookup", lookup),
        ("Create", create),
    ]
}

async fn unusable_credentials_are_unauthenticated_alike(db: Db) {
    let app = TestApp::spawn(db).await;
    let expired = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(now() - 2 * DAY)),
            token_expiry_period_in_days: Some(1),
            ..workspace_token("expired", "ws1")
        })
        .await
        .secret();
    let not_yet_valid = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(now() + DAY)),
            ..workspace_token("later", "ws1")
        })
        .await
        .secret();
    let disabled = app.create(workspace_token("disabled", "ws1")).await;
    // Nothing can disable a token through the API yet.
    app.db
        .execute(&format!(
            "UPDATE api_tokens SET enabled = false WHERE id = '{}'",
            disabled.id
        ))
        .await;

    let good = app.secret.clone();
    let (head, secret_part) = good.rsplit_once('.').unwrap();
    let flipped = if secret_part.starts_with('A') {
        'B'
    } else {
        'A'
    };
    let bad_checksum = format!("{head}.{flipped}{}", &secret_part[1..]);
    let wrong_prefix = good.replacen("tokend.", "dt0c01.", 1);
    let unknown = unknown_secret();

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no authorization header", None),
        ("empty header", Some(String::new())),
        ("Basic scheme", Some("Basic dXNlcjpwYXNzd29yZA==".into())),
        (
            "Basic scheme with a valid secret",
            Some(format!("Basic {good}")),
        ),
        ("no scheme", Some(good.clone())),
        ("Bearer alone", Some("Bearer".into())),
        ("Bearer and a space", Some("Bearer ".into())),
        ("Bearer with no space", Some(format!("Bearer{good}"))),
        ("garbage", Some("Bearer garbage".into())),
        ("trailing garbage", Some(format!("Bearer {good} extra"))),
        ("well-formed but unknown", Some(format!("Bearer {unknown}"))),
        ("bad checksum", Some(format!("Bearer {bad_checksum}"))),
        ("wrong prefix", Some(format!("Bearer {wrong_prefix}"))),
        ("expired caller", Some(format!("Bearer {expired}"))),
        (
            "not-yet-valid caller",
            Some(format!("Bearer {not_yet_valid}")),
        ),
        (
            "disabled caller",
            Some(format!("Bearer {}", disabled.secret())),
        ),
    ];
    let mut messages = Vec::new();
    for (what, value) in &cases {
        for (rpc, result) in call_every_rpc(&app, value.as_deref()).await {
            let status = match result {
                Ok(()) => panic!("{rpc} with {what}: expected UNAUTHENTICATED, got OK"),
                Err(status) => status,
            };
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{rpc} with {what}: {status:?}"
            );
            for secret in [
                &good,
                &expired,
                &not_yet_valid,
                &disabled.secret(),
                &unknown,
            ] {
                let key = secret.rsplit_once('.').unwrap().1;
                assert!(
                    !status.message().contains(key),
                    "{rpc} with {what} echoes a secret"
                );
            }
            messages.push((format!("{rpc} with {what}"), status.message().to_owned()));
        }
    }
    let (first_case, first) = &messages[0];
    for (case, message) in &messages {
        assert_eq!(message, first, "{case} differs from {first_case}");
    }

    // None of the refused Creates wrote anything.
    let listed = app.list(pb::ListApiTokensRequest::default()).await.unwrap();
    assert!(listed.tokens.iter().all(|t| t.name != "should-not-exist"));
    app.stop().await;
}

/// `Bearer` and Dynatrace's `Api-Token`, in any case (RFC 7235).
async fn the_bearer_scheme_is_case_insensitive(db: Db) {
    let app = TestApp::spawn(db).await;
    for scheme in [
        "Bearer",
        "bearer",
        "BEARER",
        "Api-Token",
        "api-token",
        "API-TOKEN",
    ] {
        let value = format!("{scheme} {}", app.secret);
        let request = authorized(
            Some(&value),
            pb::ApiTokenSecret {
                token: app.secret.clone(),
            },
        );
        let meta = app.client.clone().lookup_api_token(request).await;
        assert_eq!(
            meta.unwrap_or_else(|e| panic!("{scheme}: {e:?}"))
                .into_inner()
                .name,
            "bootstrap"
        );
    }
    app.stop().await;
}

/// Waits until the database holds a use of `token_id` and returns its
/// `(lastUsedAt, address)`.
async fn recorded_use(app: &TestApp, token_id: &str) -> (i64, String) {
    eventually("the caller's use to be flushed", || async {
        match app.db.usage_of(token_id).await {
            (Some(at), Some(ip)) => Some((at, ip)),
            _ => None,
        }
    })
    .await
}

async fn the_callers_use_is_recorded(db: Db) {
    let app = TestApp::spawn(db).await;
    let caller = app.create(workspace_token("caller", "ws1")).await;
    assert_eq!(app.db.usage_of(&caller.id).await, (None, None));
    let before = now();
    app.client
        .clone()
        .list_api_tokens(with_bearer(
            &caller.secret(),
            pb::ListApiTokensRequest {
                organization_id: ORG.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let (at, ip) = recorded_use(&app, &caller.id).await;
    assert!((before..=now()).contains(&at), "lastUsedAt {at}");
    assert_eq!(ip, "127.0.0.1");
    // Get shows it as lastUsedAt.
    assert_eq!(
        app.get(&caller.id)
            .await
            .unwrap()
            .last_used_at
            .map(|t| t.seconds),
        Some(at)
    );
    app.stop().await;
}

async fn a_loopback_proxy_forwards_the_client_address(db: Db) {
    let app = TestApp::spawn(db).await;
    let cases = [
        // The sidecar appends the address it saw; earlier hops are the
        // client's own words and must not be believed.
        ("last hop", "203.0.113.7, 10.0.0.1", "10.0.0.1"),
        ("single hop", "198.51.100.23", "198.51.100.23"),
        ("IPv6", "2001:db8::7", "2001:db8::7"),
        ("not an address", "10.0.0.1, unknown", "127.0.0.1"),
    ];
    for (what, forwarded, expected) in cases {
        let caller = app.create(workspace_token(what, "ws1")).await;
        let mut request = with_bearer(
            &caller.secret(),
            pb::ListApiTokensRequest {
                organization_id: ORG.into(),
                ..Default::default()
            },
        );
        request.metadata_mut().insert(
            "x-forwarded-for",
            MetadataValue::try_from(forwarded).unwrap(),
        );
        app.client.clone().list_api_tokens(request).await.unwrap();
        let (_, ip) = recorded_use(&app, &caller.id).await;
        assert_eq!(ip, expected, "{what}: x-forwarded-for {forwarded:?}");
    }
    app.stop().await;
}

/// This host's address on its default route: an address a client can
/// connect from that is not loopback. Sends nothing.
fn non_loopback_address() -> IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    socket
        .connect("203.0.113.1:9")
        .expect("this test needs a non-loopback interface with a default route");
    let ip = socket.local_addr().expect("local address").ip();
    assert!(!ip.is_loopback(), "{ip}");
    ip
}

async fn a_remote_peer_cannot_claim_another_address(db: Db) {
    let host = non_loopback_address();
    let app = TestApp::spawn_with(db, |settings| settings.listen = SocketAddr::new(host, 0)).await;
    let caller = app.create(workspace_token("remote", "ws1")).await;
    let mut request = with_bearer(
        &caller.secret(),
        pb::ListApiTokensRequest {
            organization_id: ORG.into(),
            ..Default::default()
        },
    );
    request
        .metadata_mut()
        .insert("x-forwarded-for", MetadataValue::from_static("203.0.113.7"));
    // app.client connects to the host address, so the peer is not loopback.
    assert_eq!(app.addr.ip(), host);
    app.client.clone().list_api_tokens(request).await.unwrap();
    let (_, ip) = recorded_use(&app, &caller.id).await;
    assert_eq!(
        ip,
        host.to_string(),
        "x-forwarded-for from a non-loopback peer must be ignored"
    );
    app.stop().await;
}

async fn a_valid_caller_is_not_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    let bearer = format!("Bearer {}", app.secret);
    for (rpc, result) in call_every_rpc(&app, Some(&bearer)).await {
        result.unwrap_or_else(|e| panic!("{rpc}: {e:?}"));
    }
    // A token whose window has just opened authenticates.
    let fresh = app
        .create(pb::CreateApiTokenRequest {
            start_at: Some(at(now() - 1)),
            ..workspace_token("fresh", "ws1")
        })
        .await;
    app.lookup_as(&fresh.secret(), &fresh.secret())
        .await
        .unwrap();
    assert_code(
        app.lookup_as(&fresh.secret(), "").await,
        Code::InvalidArgument,
    );
    app.stop().await;
}

both_databases!(
    unusable_credentials_are_unauthenticated_alike,
    the_bearer_scheme_is_case_insensitive,
    the_callers_use_is_recorded,
    a_loopback_proxy_forwards_the_client_address,
    a_remote_peer_cannot_claim_another_address,
    a_valid_caller_is_not_refused,
);
