//! Envoy ext_authz: `envoy.service.auth.v3.Authorization/Check` called
//! directly with Envoy's own client types, as Envoy calls it: every class
//! of refused credential (401), allowed tokens and the identity headers,
//! route requirements (satisfied, unsatisfied, misconfigured), the use
//! recorded under the client Envoy names, the throttle's 429, and who may
//! call Check at all.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, HeaderValueOption, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttributeRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use hyper_util::rt::TokioIo;
use tokend::domain::net::parse_cidr_list;
use tokend::domain::token::TokenType;
use tokend::pb;
use tonic::Code;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::both_databases;
use crate::helpers::Secret as _;
use crate::helpers::{
    Db, ORG, OTHER_ORG, TestApp, at, bootstrap_token, change_token, eventually, metric_now, now,
    unknown_secret, workspace_token,
};

both_databases!(
    every_refused_credential_is_401_and_says_nothing_more,
    a_valid_token_passes_with_its_identity_and_without_its_secret,
    the_authorization_header_is_kept_when_configured,
    route_requirements_are_met_refused_or_misconfigured,
    failures_are_throttled_by_the_client_envoy_names,
    only_allowed_peers_may_call_check,
);

const DAY: i64 = 86_400;
/// The client address Envoy reports in the tests (TEST-NET-3).
const CLIENT: &str = "203.0.113.7";

/// One request as Envoy's ext_authz filter describes it.
#[derive(Default, Clone)]
struct Asked<'a> {
    authorization: Option<String>,
    client: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    extensions: Vec<(&'a str, &'a str)>,
}

impl Asked<'_> {
    fn bearer(secret: &str) -> Self {
        Self {
            authorization: Some(format!("Bearer {secret}")),
            client: CLIENT,
            ..Default::default()
        }
    }

    fn request(&self) -> CheckRequest {
        let mut headers: HashMap<String, String> = self
            .headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        headers.insert(":path".into(), "/anything".into());
        if let Some(value) = &self.authorization {
            headers.insert("authorization".into(), value.clone());
        }
        CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer {
                    address: Some(Address {
                        address: Some(AddressKind::SocketAddress(SocketAddress {
                            address: self.client.to_owned(),
                            port_specifier: Some(PortSpecifier::PortValue(40_000)),
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                }),
                request: Some(AttributeRequest {
                    http: Some(HttpRequest {
                        method: "GET".into(),
                        path: "/anything".into(),
                        headers,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                context_extensions: self
                    .extensions
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..Default::default()
            }),
        }
    }
}

/// What Envoy does with a CheckResponse, in test terms.
#[derive(Debug)]
struct Answer {
    /// `status.code` (0: allowed).
    grpc: i32,
    /// The denied HTTP status (0 when allowed).
    http: i32,
    body: String,
    /// Denied: headers sent to the client; allowed: headers set upstream.
    headers: Vec<HeaderValueOption>,
    removed: Vec<String>,
    debug: String,
}

impl Answer {
    fn of(response: CheckResponse) -> Self {
        let debug = format!("{response:?}");
        let grpc = response.status.as_ref().map_or(-1, |s| s.code);
        match response.http_response {
            Some(HttpResponse::DeniedResponse(d)) => Self {
                grpc,
                http: d.status.map_or(0, |s| s.code),
                body: d.body,
                headers: d.headers,
                removed: vec![],
                debug,
            },
            Some(HttpResponse::OkResponse(ok)) => Self {
                grpc,
                http: 0,
                body: String::new(),
                headers: ok.headers,
                removed: ok.headers_to_remove,
                debug,
            },
            other => panic!("unexpected http_response {other:?}"),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == name)
            .map(|h| h.value.as_str())
    }

    #[track_caller]
    fn assert_denied(&self, http: i32, class: &str, case: &str) {
        assert_eq!(self.http, http, "{case}: {}", self.debug);
        assert_ne!(self.grpc, 0, "{case}: a denial has a non-OK status");
        assert_eq!(
            self.body,
            format!("{{\"error\":\"{class}\"}}"),
            "{case}: body"
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

async fn client(app: &TestApp) -> AuthorizationClient<Channel> {
    AuthorizationClient::new(
        Endpoint::from_shared(format!("http://{}", app.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect"),
    )
}

/// A client whose connections leave from `source` (another loopback
/// address), to be a peer other than 127.0.0.1 without another network.
async fn client_from(app: &TestApp, source: &str) -> AuthorizationClient<Channel> {
    let connector = BoundConnector {
        source: format!("{source}:0").parse().expect("source address"),
        target: app.addr,
    };
    AuthorizationClient::new(
        Endpoint::from_static("http://bound.invalid")
            .connect_with_connector(connector)
            .await
            .expect("connect from the source address"),
    )
}

/// Connects to `target` from a socket bound to `source`.
#[derive(Clone)]
struct BoundConnector {
    source: SocketAddr,
    target: SocketAddr,
}

impl tower::Service<Uri> for BoundConnector {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (source, target) = (self.source, self.target);
        Box::pin(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(source)?;
            Ok(TokioIo::new(socket.connect(target).await?))
        })
    }
}

async fn check(client: &AuthorizationClient<Channel>, asked: &Asked<'_>) -> Answer {
    Answer::of(
        client
            .clone()
            .check(asked.request())
            .await
            .expect("Check answers")
            .into_inner(),
    )
}

async fn token(app: &TestApp, request: pb::CreateApiTokenRequest) -> pb::ApiToken {
    app.create(request).await
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

/// A token of the bootstrap organization with `role` on `entity`.
async fn holding(app: &TestApp, name: &str, role: &str, workspace: &str) -> pb::ApiToken {
    token(
        app,
        pb::CreateApiTokenRequest {
            role: role.into(),
            ..workspace_token(name, workspace)
        },
    )
    .await
}

async fn every_refused_credential_is_401_and_says_nothing_more(db: Db) {
    let app = TestApp::spawn(db).await;
    let check_client = client(&app).await;
    let disabled = token(&app, owner_request("disabled")).await;
    let deleted = token(&app, owner_request("deleted")).await;
    let rotated = token(&app, owner_request("rotated")).await;
    // Each works once (and sits in the credential cache) before the API
    // revokes it: the very next Check must refuse it.
    for t in [&disabled, &deleted, &rotated] {
        let answer = check(&check_client, &Asked::bearer(&t.secret())).await;
        assert_eq!(answer.grpc, 0, "{}: {}", t.name, answer.debug);
    }
    change_token(&app.client, &app.secret, &disabled.id, "disable").await;
    change_token(&app.client, &app.secret, &deleted.id, "delete").await;
    change_token(&app.client, &app.secret, &rotated.id, "rotate").await;
    let expired = token(
        &app,
        pb::CreateApiTokenRequest {
            start_at: Some(at(now() - 2 * DAY)),
            token_expiry_period_in_days: Some(1),
            ..owner_request("expired")
        },
    )
    .await;
    let not_yet = token(
        &app,
        pb::CreateApiTokenRequest {
            start_at: Some(at(now() + DAY)),
            ..owner_request("not yet valid")
        },
    )
    .await;
    let good = app.secret.clone();
    let [deleted_s, disabled_s, expired_s, not_yet_s, rotated_s] =
        [&deleted, &disabled, &expired, &not_yet, &rotated].map(|t| t.secret());
    let cases: Vec<(&str, Option<String>, Option<&str>)> = vec![
        ("no header", None, None),
        ("empty header", Some(String::new()), None),
        ("Bearer alone", Some("Bearer".into()), None),
        (
            "another scheme",
            Some(format!("Basic {good}")),
            Some(good.as_str()),
        ),
        ("not a secret", Some("Bearer garbage".into()), None),
        (
            "trailing text",
            Some(format!("Bearer {good} x")),
            Some(good.as_str()),
        ),
        (
            "two credentials joined by Envoy",
            Some(format!("Bearer {good},Bearer {good}")),
            Some(good.as_str()),
        ),
        (
            "unknown",
            Some(format!("Bearer {}", unknown_secret())),
            None,
        ),
        (
            "deleted",
            Some(format!("Bearer {}", deleted.secret())),
            Some(deleted_s.as_str()),
        ),
        (
            "disabled",
            Some(format!("Bearer {}", disabled.secret())),
            Some(disabled_s.as_str()),
        ),
        (
            "expired",
            Some(format!("Bearer {}", expired.secret())),
            Some(expired_s.as_str()),
        ),
        (
            "not yet valid",
            Some(format!("Api-Token {}", not_yet.secret())),
            Some(not_yet_s.as_str()),
        ),
        (
            "rotated out",
            Some(format!("Bearer {}", rotated.secret())),
            Some(rotated_s.as_str()),
        ),
    ];
    for (case, authorization, secret) in cases {
        let asked = Asked {
            authorization,
            client: CLIENT,
            ..Default::default()
        };
        let answer = check(&check_client, &asked).await;
        answer.assert_denied(401, "unauthenticated", case);
        assert_eq!(answer.grpc, Code::Unauthenticated as i32, "{case}");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"), "{case}");
        if let Some(secret) = secret {
            assert!(!answer.debug.contains(secret), "{case}: the secret leaked");
        }
    }
    app.stop().await;
}

async fn a_valid_token_passes_with_its_identity_and_without_its_secret(db: Db) {
    let app = TestApp::spawn(db).await;
    let check_client = client(&app).await;
    let ws = holding(&app, "ws operator", "WORKSPACE_OPERATOR", "ws-1").await;
    assert_eq!(app.db.usage_of(&ws.id).await, (None, None));
    for scheme in ["Bearer", "Api-Token", "api-token"] {
        let asked = Asked {
            authorization: Some(format!("{scheme} {}", ws.secret())),
            client: CLIENT,
            headers: vec![
                ("x-tokend-token-id", "forged"),
                ("x-tokend-organization-id", "org-forged"),
                ("x-tokend-admin", "true"),
                ("x-other", "kept"),
            ],
            ..Default::default()
        };
        let answer = check(&check_client, &asked).await;
        assert_eq!(
            (answer.grpc, answer.http),
            (0, 0),
            "{scheme}: {}",
            answer.debug
        );
        assert_eq!(answer.header("x-tokend-token-id"), Some(ws.id.as_str()));
        assert_eq!(answer.header("x-tokend-organization-id"), Some(ORG));
        assert_eq!(answer.header("x-tokend-token-type"), Some("WORKSPACE"));
        assert_eq!(
            answer.header("x-tokend-roles"),
            Some(format!("WORKSPACE_OPERATOR:organizations/{ORG}/workspaces/ws-1").as_str())
        );
        for header in answer.headers.iter() {
            assert_eq!(
                header.append_action, 2,
                "OVERWRITE_IF_EXISTS_OR_ADD: {header:?}"
            );
        }
        let mut removed = answer.removed.clone();
        removed.sort();
        assert_eq!(removed, ["authorization", "x-tokend-admin"], "{scheme}");
        assert!(
            !answer.debug.contains(&ws.secret()),
            "{scheme}: the secret leaked"
        );
        let ws_secret = ws.secret();
        let secret_part = ws_secret.rsplit('.').next().expect("secret part");
        assert!(
            !answer.debug.contains(secret_part),
            "{scheme}: the secret leaked"
        );
    }
    // A bootstrap-style token of another organization passes a route
    // without requirements.
    let (_, other) = bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "other org",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    let answer = check(&check_client, &Asked::bearer(&other)).await;
    assert_eq!(answer.header("x-tokend-organization-id"), Some(OTHER_ORG));
    // The use is recorded under the client Envoy names, not Envoy's address.
    let (at_, ip) = eventually("the use to be flushed", || async {
        match app.db.usage_of(&ws.id).await {
            (Some(at_), Some(ip)) => Some((at_, ip)),
            _ => None,
        }
    })
    .await;
    assert_eq!(ip, CLIENT);
    assert!(at_ >= now() - 60, "lastUsedAt {at_}");
    app.stop().await;
}

async fn the_authorization_header_is_kept_when_configured(db: Db) {
    let app = TestApp::spawn_with(db, |s| s.ext_authz.keep_authorization = true).await;
    let answer = check(&client(&app).await, &Asked::bearer(&app.secret)).await;
    assert_eq!(answer.grpc, 0, "{}", answer.debug);
    assert!(
        !answer.removed.iter().any(|h| h == "authorization"),
        "{:?}",
        answer.removed
    );
    app.stop().await;
}

async fn route_requirements_are_met_refused_or_misconfigured(db: Db) {
    let app = TestApp::spawn(db).await;
    let check_client = client(&app).await;
    let operator = holding(&app, "operator", "WORKSPACE_OPERATOR", "ws-1")
        .await
        .secret();
    let member = holding(&app, "member", "WORKSPACE_MEMBER", "ws-1")
        .await
        .secret();
    let elsewhere = holding(&app, "elsewhere", "WORKSPACE_OWNER", "ws-2")
        .await
        .secret();
    let owner = app.secret.clone();
    let (_, other_owner) = bootstrap_token(
        &app.db.url(),
        OTHER_ORG,
        "other owner",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    let org_only = [("tokend.organization_id", ORG)];
    let author_ws1 = [
        ("tokend.organization_id", ORG),
        ("tokend.required_role", "WORKSPACE_AUTHOR"),
        ("tokend.entity", "WORKSPACE:ws-1"),
    ];
    let ask = |secret: &str, extensions: &[(&'static str, &'static str)]| Asked {
        extensions: extensions.to_vec(),
        ..Asked::bearer(secret)
    };
    for (case, secret, extensions, allowed) in [
        ("org route, a token of it", &member, &org_only[..], true),
        (
            "org route, another org's owner",
            &other_owner,
            &org_only[..],
            false,
        ),
        (
            "role route, an including role",
            &operator,
            &author_ws1[..],
            true,
        ),
        ("role route, the org's owner", &owner, &author_ws1[..], true),
        ("role route, a lesser role", &member, &author_ws1[..], false),
        (
            "role route, another workspace",
            &elsewhere,
            &author_ws1[..],
            false,
        ),
        (
            "role route, another org's owner",
            &other_owner,
            &author_ws1[..],
            false,
        ),
    ] {
        let answer = check(&check_client, &ask(secret, extensions)).await;
        if allowed {
            assert_eq!(answer.grpc, 0, "{case}: {}", answer.debug);
        } else {
            answer.assert_denied(403, "forbidden", case);
            assert_eq!(answer.grpc, Code::PermissionDenied as i32, "{case}");
        }
    }
    let misconfigured: [&[(&'static str, &'static str)]; 5] = [
        &[
            ("tokend.organization_id", ORG),
            ("tokend.required_role", "WORKSPACE_KING"),
            ("tokend.entity", "WORKSPACE:ws-1"),
        ],
        &[
            ("tokend.organization_id", ORG),
            ("tokend.required_role", "WORKSPACE_AUTHOR"),
            ("tokend.entity", "ws-1"),
        ],
        &[
            ("tokend.required_role", "WORKSPACE_AUTHOR"),
            ("tokend.entity", "WORKSPACE:ws-1"),
        ],
        &[("tokend.organisation_id", ORG)],
        &[
            ("tokend.organization_id", ORG),
            ("tokend.entity", "WORKSPACE:ws-1"),
        ],
    ];
    for extensions in misconfigured {
        // Refused whatever is presented, the owner included, and every
        // time (the log line is once per distinct value).
        for _ in 0..2 {
            let answer = check(&check_client, &ask(&owner, extensions)).await;
            answer.assert_denied(403, "route_misconfigured", &format!("{extensions:?}"));
        }
    }
    app.stop().await;
}

async fn failures_are_throttled_by_the_client_envoy_names(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.throttle.threshold = 3;
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let check_client = client(&app).await;
    let attacker = "198.51.100.9";
    let forged = Asked {
        client: attacker,
        ..Asked::bearer(&unknown_secret())
    };
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(check(&check_client, &forged).await.http);
    }
    assert_eq!(answers[..3], [401, 401, 401], "{answers:?}");
    assert!(answers[3..].iter().all(|s| *s == 429), "{answers:?}");
    // Throttled: even a good token from that address, before any lookup.
    let good_from_attacker = Asked {
        client: attacker,
        ..Asked::bearer(&app.secret)
    };
    let answer = check(&check_client, &good_from_attacker).await;
    answer.assert_denied(429, "throttled", "the throttled address");
    assert!(answer.header("retry-after").is_some(), "{}", answer.debug);
    // Every other client behind the same gateway is served.
    let answer = check(&check_client, &Asked::bearer(&app.secret)).await;
    assert_eq!(answer.grpc, 0, "{}", answer.debug);
    for (verdict, expected) in [
        ("unauthenticated", 3.0),
        ("throttled", 3.0),
        ("allowed", 1.0),
    ] {
        let series = format!("tokend_ext_authz_checks_total{{verdict=\"{verdict}\"}}");
        assert_eq!(
            metric_now(app.metrics_addr, &series).await,
            expected,
            "{series}"
        );
    }
    app.stop().await;
}

async fn only_allowed_peers_may_call_check(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.ext_authz.allowed_peers = parse_cidr_list("127.0.0.1/32").expect("cidr")
    })
    .await;
    let asked = Asked::bearer(&app.secret);
    let allowed = check(&client(&app).await, &asked).await;
    assert_eq!(allowed.grpc, 0, "from 127.0.0.1: {}", allowed.debug);
    let refused = client_from(&app, "127.0.0.2")
        .await
        .check(asked.request())
        .await;
    match refused {
        Err(status) => assert_eq!(status.code(), Code::PermissionDenied, "{status:?}"),
        Ok(answer) => panic!("127.0.0.2 was answered: {answer:?}"),
    }
    app.stop().await;

    // Opened: the same peer is answered.
    let open = TestApp::spawn_with(db, |s| {
        s.ext_authz.allowed_peers = parse_cidr_list("127.0.0.1/32").expect("cidr");
        s.ext_authz.allow_remote = true;
    })
    .await;
    let answer = client_from(&open, "127.0.0.2")
        .await
        .check(Asked::bearer(&open.secret).request())
        .await
        .expect("answered once opened");
    assert_eq!(Answer::of(answer.into_inner()).grpc, 0);
    open.stop().await;
}
