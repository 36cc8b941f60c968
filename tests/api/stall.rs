//! Stalling before authentication: header-only and slow-body streams, with
//! no credential or a forged one, must not starve authenticated callers
//! (issue 13, item 3); and idle connections must not block a metrics scrape
//! (item 14).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokend::pb;
use tokio::task::JoinHandle;
use tonic::Code;

use crate::helpers::*;
use crate::limits::{sample, scrape};

crate::both_databases!(
    header_only_streams_without_credentials_do_not_starve_callers,
    header_only_streams_with_a_forged_secret_do_not_starve_other_clients,
    slow_bodies_are_answered_deadline_exceeded_and_release_their_slots,
);

const GET: &str = "/tokend.v1.ApiTokenService/GetApiToken";

/// What the attacker puts in its headers.
#[derive(Clone, Default)]
struct Headers {
    authorization: Option<String>,
    forwarded_for: Option<&'static str>,
}

/// A client that keeps `streams` header-only calls open: it sends the
/// request headers and never the body. A call the server ends at a deadline
/// (it held a slot until then) is reopened at once, one it sheds 200 ms
/// later, so whatever budget the streams can take stays taken for as long
/// as the attack lasts (had shed calls not been reopened, slots freed at a
/// deadline could go to another connection's retry, which was then shed,
/// and on a busy machine the attack shrank below the budget it aims at).
struct Attack {
    tasks: Vec<JoinHandle<()>>,
}

impl Attack {
    async fn start(app: &TestApp, streams: usize, headers: Headers) -> Self {
        let mut tasks = Vec::new();
        // Below the server's 128 streams per connection.
        let per_connection = 100;
        let mut left = streams;
        while left > 0 {
            let count = left.min(per_connection);
            left -= count;
            let tcp = tokio::net::TcpStream::connect(app.addr)
                .await
                .expect("connect");
            let (send, connection) = h2::client::handshake(tcp).await.expect("handshake");
            tasks.push(tokio::spawn(async move {
                let _ = connection.await;
            }));
            let (addr, headers) = (app.addr, headers.clone());
            tasks.push(tokio::spawn(async move {
                let mut open = FuturesUnordered::new();
                let target = count;
                loop {
                    while open.len() < target {
                        let Ok(mut ready) = send.clone().ready().await else {
                            return;
                        };
                        let mut request = http::Request::post(format!("http://{addr}{GET}"))
                            .header("content-type", "application/grpc")
                            .header("te", "trailers");
                        if let Some(value) = &headers.authorization {
                            request = request.header("authorization", value.as_str());
                        }
                        if let Some(value) = headers.forwarded_for {
                            request = request.header("x-forwarded-for", value);
                        }
                        let request = request.body(()).expect("request");
                        let Ok((response, body)) = ready.send_request(request, false) else {
                            return;
                        };
                        open.push(async move {
                            // Holding the send half keeps the stream open.
                            let _body = body;
                            response.await.ok().map(|r| grpc_status(r.headers()))
                        });
                    }
                    let Some(status) = open.next().await else {
                        return;
                    };
                    match status {
                        None => return,
                        // Ended at a deadline: the slot it held is free again.
                        Some(code) if code == Code::DeadlineExceeded as i32 => {}
                        // Shed: the budget is full; try again shortly.
                        Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }));
        }
        Self { tasks }
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn grpc_status(headers: &http::HeaderMap) -> i32 {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn get_request(token_id: &str) -> pb::GetApiTokenRequest {
    pb::GetApiTokenRequest {
        organization_id: ORG.into(),
        token_id: token_id.into(),
    }
}

/// Waits until a call like the attacker's, but complete, is refused at
/// once: the budget the attack aims at is full.
async fn until_saturated(
    app: &TestApp,
    probe: impl Fn() -> tonic::Request<pb::GetApiTokenRequest>,
) {
    eventually("the attack to fill its budget", || {
        let mut client = app.client.clone();
        let request = probe();
        async move {
            let code = client.get_api_token(request).await.err()?.code();
            matches!(code, Code::Unavailable | Code::ResourceExhausted).then_some(())
        }
    })
    .await;
}

/// The authenticated caller is served, several times over, while the attack
/// goes on.
async fn callers_are_served(
    app: &TestApp,
    probe: impl Fn() -> tonic::Request<pb::GetApiTokenRequest> + Copy,
) {
    for round in 0..5 {
        until_saturated(app, probe).await;
        let listed = app
            .list(pb::ListApiTokensRequest::default())
            .await
            .unwrap_or_else(|status| panic!("round {round}: List refused: {status:?}"));
        assert_eq!(listed.total_count, 1, "round {round}");
        let got = app
            .get(&app.token_id)
            .await
            .unwrap_or_else(|status| panic!("round {round}: Get refused: {status:?}"));
        assert_eq!(got.id, app.token_id, "round {round}");
    }
}

/// The security review's reproduction: more header-only GetApiToken streams
/// without credentials than `--max-in-flight`, kept open.
async fn header_only_streams_without_credentials_do_not_starve_callers(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.limits.max_in_flight = 256;
        // Long enough that only the server's body deadline (if any) ends
        // the attacker's streams during the test.
        s.limits.request_timeout = Duration::from_secs(60);
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let attack = Attack::start(&app, 300, Headers::default()).await;
    let token_id = app.token_id.clone();
    let probe = move || tonic::Request::new(get_request(&token_id));
    callers_are_served(&app, &probe).await;
    // The unauthenticated probe itself was answered UNAVAILABLE, not
    // UNAUTHENTICATED, while the attack held its budget.
    let metrics = scrape(&app).await;
    let unauthenticated = sample(
        &metrics,
        "tokend_shed_requests_by_budget_total{budget=\"unauthenticated\"}",
    );
    assert!(unauthenticated.unwrap_or(0.0) >= 1.0, "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            "tokend_shed_requests_by_budget_total{budget=\"in_flight\"}"
        ),
        Some(0.0),
        "no main slot was ever short: {metrics}"
    );
    assert!(sample(&metrics, "tokend_shed_requests_total").unwrap_or(0.0) >= 1.0);
    drop(attack);
    app.stop().await;
}

/// A forged secret is well-formed (right prefix, id shape and checksum), so
/// only the database can tell it is not real; its header-only streams come
/// from one client address, which may take only its share of the budget.
async fn header_only_streams_with_a_forged_secret_do_not_starve_other_clients(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.limits.max_in_flight = 256;
        s.limits.request_timeout = Duration::from_secs(60);
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let forged = unknown_secret();
    // The attacker reaches tokend through the loopback sidecar, which names
    // it in x-forwarded-for; the honest caller connects directly.
    let attacker = "10.66.0.1";
    let headers = Headers {
        authorization: Some(format!("Bearer {forged}")),
        forwarded_for: Some(attacker),
    };
    let attack = Attack::start(&app, 300, headers).await;
    let token_id = app.token_id.clone();
    let probe = move || {
        let mut request = with_bearer(&forged, get_request(&token_id));
        request
            .metadata_mut()
            .insert("x-forwarded-for", attacker.parse().expect("address"));
        request
    };
    callers_are_served(&app, &probe).await;
    let metrics = scrape(&app).await;
    let per_client = sample(
        &metrics,
        "tokend_shed_requests_by_budget_total{budget=\"per_client\"}",
    );
    assert!(per_client.unwrap_or(0.0) >= 1.0, "{metrics}");
    drop(attack);
    app.stop().await;
}

/// Authenticated calls that send their headers and part of the body, then
/// nothing: each is answered DEADLINE_EXCEEDED when the body deadline
/// passes (long before `--request-timeout`), and its slot is free again.
async fn slow_bodies_are_answered_deadline_exceeded_and_release_their_slots(db: Db) {
    let app = TestApp::spawn_with(db, |s| {
        s.limits.max_in_flight = 8;
        s.limits.request_timeout = Duration::from_secs(60);
        s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut ready = send.clone().ready().await.expect("ready");
        let request = http::Request::post(format!("http://{}{GET}", app.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {}", app.secret))
            .body(())
            .expect("request");
        let (response, mut body) = ready.send_request(request, false).expect("send");
        // The first bytes of a gRPC frame header; the rest never comes.
        body.send_data(prost::bytes::Bytes::from_static(&[0, 0, 0]), false)
            .expect("partial body");
        calls.push(async move {
            let _body = body;
            let response = response.await.expect("answered");
            let message = response
                .headers()
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (grpc_status(response.headers()), message)
        });
    }
    let answers = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join_all(calls),
    )
    .await
    .expect("slow-body calls answered within 10 s (request timeout: 60 s)");
    for (code, message) in answers {
        assert_eq!(code, Code::DeadlineExceeded as i32, "{message}");
        assert!(message.contains("body"), "{message}");
    }
    app.get(&app.token_id).await.expect("served again");
    app.list(pb::ListApiTokensRequest::default())
        .await
        .expect("served again");
    let metrics = scrape(&app).await;
    assert_eq!(
        sample(&metrics, "tokend_request_body_timeouts_total"),
        Some(8.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "tokend_grpc_requests_total{method=\"tokend.v1.ApiTokenService/GetApiToken\",code=\"DEADLINE_EXCEEDED\"}"
        ),
        Some(8.0),
        "{metrics}"
    );
    driver.abort();
    app.stop().await;
}

/// Idle connections to the metrics listener (connected, never a request)
/// cannot keep a scrape out: past the connection limit the oldest idle one
/// is answered 503 and closed to make room. One database: the metrics
/// listener never touches it.
#[tokio::test]
async fn idle_metrics_connections_do_not_block_a_scrape() {
    crate::helpers::within_deadline("idle_metrics_connections_do_not_block_a_scrape", async {
        use tokio::io::AsyncReadExt;

        let app = TestApp::spawn_with(Db::Sqlite, |s| {
            s.metrics_listen = Some(([127, 0, 0, 1], 0).into());
        })
        .await;
        let addr = app.metrics_addr.expect("metrics are on");
        let mut idle = Vec::new();
        for _ in 0..100 {
            idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        let metrics = scrape(&app).await;
        assert!(metrics.contains("tokend_grpc_requests"), "{metrics}");
        let answers =
            futures_util::future::join_all(idle.into_iter().map(|mut stream| async move {
                let mut text = String::new();
                let _ = stream.read_to_string(&mut text).await;
                text
            }));
        let answers = tokio::time::timeout(Duration::from_secs(10), answers)
            .await
            .expect("every idle connection closed within 10 s");
        let evicted = answers
            .iter()
            .filter(|a| a.starts_with("HTTP/1.1 503"))
            .count();
        assert!(
            evicted >= 50,
            "only {evicted} of 100 idle connections made room"
        );
        // And the listener still serves.
        scrape(&app).await;
        app.stop().await;
    })
    .await
}
