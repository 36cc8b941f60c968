//! The command line: `token create`, `migrate`, `descriptor`, and `serve`
//! stopping gracefully on SIGTERM.

use crate::helpers::Secret as _;
use std::process::Output;

use prost::Message;
use sea_orm::{ConnectionTrait, Statement};
use tokend::domain::token::TokenType;
use tokend::pb;
use tokend::pb::basic_subject_profile::SubjectType;

use crate::both_databases;
use crate::helpers::{
    Db, ORG, TestApp, TestDb, bootstrap_token, organization_token, unknown_secret, with_bearer,
};
use crate::process::{Server, free_port, tokend};

/// Runs `tokend` with `args` to completion, off the async runtime.
async fn run(args: &[&str]) -> Output {
    let mut command = tokend(args);
    tokio::task::spawn_blocking(move || command.output().expect("run tokend"))
        .await
        .expect("join")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn token_create_prints_a_working_secret_last(db: Db) {
    let app = TestApp::spawn(db).await;
    let url = app.db.url();
    let output = run(&[
        "--database-url",
        &url,
        "token",
        "create",
        "--org",
        ORG,
        "--name",
        "from-cli",
        "--type",
        "WORKSPACE",
        "--role",
        "WORKSPACE_OWNER",
        "--entity-id",
        "ws1",
        "--expiry-days",
        "30",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let out = stdout(&output);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "a summary, then the secret: {out:?}");
    let secret = *lines.last().unwrap();
    assert!(secret.starts_with("tokend."), "last line {secret:?}");
    assert!(!secret.contains(' '), "the secret stands alone: {secret:?}");
    let id = secret.split('.').nth(1).unwrap();
    assert!(
        lines[..lines.len() - 1].iter().any(|l| l.contains(id)),
        "summary names the id: {out:?}"
    );
    assert!(
        !stderr(&output).contains(secret),
        "the secret reaches stderr"
    );

    // The secret authenticates against the running server.
    let meta = app.lookup_as(secret, secret).await.unwrap();
    assert_eq!(meta.name, "from-cli");
    assert_eq!(meta.owner, "system");
    let token = app
        .client
        .clone()
        .get_api_token(with_bearer(
            secret,
            pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(token.r#type, pb::api_token::Type::Workspace as i32);
    assert_eq!(token.expiry_period_in_days, Some(30));
    assert_eq!(token.roles.len(), 1);
    assert_eq!(
        (
            token.roles[0].role.as_str(),
            token.roles[0].entity_id.as_str()
        ),
        ("WORKSPACE_OWNER", "ws1")
    );
    let creator = token.created_by.unwrap();
    assert_eq!(
        (
            creator.subject_type,
            creator.username.as_deref().unwrap_or_default()
        ),
        (SubjectType::User as i32, "system")
    );

    // An organization token needs no entity.
    let output = run(&[
        "--database-url",
        &url,
        "token",
        "create",
        "--org",
        ORG,
        "--name",
        "org-from-cli",
        "--type",
        "ORGANIZATION",
        "--role",
        "ORGANIZATION_OWNER",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let org_secret = stdout(&output).lines().last().unwrap().to_owned();
    assert_eq!(
        app.lookup_as(&app.secret, &org_secret).await.unwrap().name,
        "org-from-cli"
    );
    app.stop().await;
}

async fn token_create_refuses_invalid_input(db: Db) {
    let app = TestApp::spawn(db).await;
    let url = app.db.url();
    let valid = [
        "--org",
        ORG,
        "--name",
        "bad",
        "--type",
        "WORKSPACE",
        "--role",
        "WORKSPACE_MEMBER",
        "--entity-id",
        "ws1",
    ];
    /// `valid` with `flag`'s value replaced (or the flag dropped, for None).
    fn with<'a>(valid: &[&'a str], flag: &str, value: Option<&'a str>) -> Vec<&'a str> {
        let mut args = Vec::new();
        let mut i = 0;
        while i < valid.len() {
            if valid[i] == flag {
                if let Some(value) = value {
                    args.extend([valid[i], value]);
                }
            } else {
                args.extend([valid[i], valid[i + 1]]);
            }
            i += 2;
        }
        args
    }
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("unknown type", with(&valid, "--type", Some("BOGUS"))),
        ("empty name", with(&valid, "--name", Some(""))),
        ("blank name", with(&valid, "--name", Some("   "))),
        ("unknown role", with(&valid, "--role", Some("NOPE"))),
        (
            "misfit role",
            with(&valid, "--role", Some("ORGANIZATION_OWNER")),
        ),
        ("missing entity", with(&valid, "--entity-id", None)),
        (
            "bad organization",
            with(&valid, "--org", Some("not an org")),
        ),
        ("missing organization", with(&valid, "--org", None)),
        (
            "zero expiry",
            [valid.to_vec(), vec!["--expiry-days", "0"]].concat(),
        ),
        (
            "long expiry",
            [valid.to_vec(), vec!["--expiry-days", "3651"]].concat(),
        ),
        (
            "unknown kind",
            [valid.to_vec(), vec!["--kind", "WEIRD"]].concat(),
        ),
    ];
    for (what, args) in cases {
        let mut full = vec!["--database-url", url.as_str(), "token", "create"];
        full.extend(args);
        let output = run(&full).await;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{what}: {full:?}\nstderr: {}",
            stderr(&output)
        );
        assert_eq!(stdout(&output), "", "{what}: nothing on stdout");
        assert!(!stderr(&output).is_empty(), "{what}: stderr says why");
    }
    let listed = app.list(pb::ListApiTokensRequest::default()).await.unwrap();
    assert_eq!(listed.total_count, 1, "nothing was created");
    app.stop().await;
}

async fn migrate_prepares_an_empty_database(db: Db) {
    let test_db = TestDb::create(db).await;
    let url = test_db.url();
    for attempt in ["first", "again"] {
        let output = run(&["--database-url", &url, "migrate"]).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{attempt}: {}",
            stderr(&output)
        );
        assert_eq!(stdout(&output), "", "{attempt}");
    }
    let conn = test_db.connect().await;
    for table in [
        "api_tokens",
        "api_token_secrets",
        "api_token_roles",
        "subjects",
    ] {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let row = conn
            .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"))
            .expect("a row");
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0, "{table}");
    }
    let _ = conn.close().await;
}

#[test]
fn descriptor_writes_the_file_descriptor_set() {
    let output = tokend(&["descriptor"]).output().expect("run tokend");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let set = prost_types::FileDescriptorSet::decode(output.stdout.as_slice())
        .expect("a FileDescriptorSet");
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    for file in [
        "google/api/http.proto",
        "google/api/annotations.proto",
        "tokend/v1/api_token.proto",
    ] {
        assert!(names.contains(&file), "{file} missing from {names:?}");
    }
    let api = set
        .file
        .iter()
        .find(|f| f.name() == "tokend/v1/api_token.proto")
        .unwrap();
    assert!(api.service.iter().any(|s| s.name() == "ApiTokenService"));
    // The sidecar transcodes with the google.api.http annotations, which
    // must survive in the method options.
    let raw = String::from_utf8_lossy(&output.stdout);
    for path in [
        "/iam/v1beta1/organizations/{organization_id}/tokens/{token_id}",
        "/platform/v1beta1/organizations/{organization_id}/tokens",
        "/api/v2/apiTokens/lookup",
    ] {
        assert!(raw.contains(path), "{path} missing from the descriptor");
    }
}

/// `url` with `password` in its userinfo.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (userinfo, host) = rest.split_once('@').expect("a user in the URL");
    let user = userinfo.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

async fn serve_stops_gracefully_on_sigterm_and_flushes_usage(db: Db) {
    let test_db = TestDb::create(db).await;
    let (token_id, secret) = bootstrap_token(
        &test_db.url(),
        ORG,
        "caller",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    let password = "s3cretpw";
    let url = match db {
        Db::Postgres => with_password(&test_db.url(), password),
        Db::Sqlite => test_db.url(),
    };
    let listen = format!("127.0.0.1:{}", free_port());
    let server = Server::start(&url, &listen);
    server.wait_serving().await;
    let channel = server.channel();
    let mut client = pb::api_token_service_client::ApiTokenServiceClient::new(channel);
    let own = client
        .get_api_token(with_bearer(
            &secret,
            pb::GetApiTokenRequest {
                organization_id: ORG.into(),
                token_id: token_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.name, "caller");
    // The flush interval is an hour: the use is still only in memory.
    assert_eq!(test_db.usage_of(&token_id).await, (None, None));

    let (code, log) = server.terminate().await;
    assert_eq!(code, Some(0), "exit code after SIGTERM; log:\n{log}");
    let (last_used, ip) = test_db.usage_of(&token_id).await;
    assert!(
        last_used.is_some(),
        "the buffered use was not flushed on shutdown; log:\n{log}"
    );
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));

    assert!(
        log.contains(&listen),
        "the start-up line names the listen address:\n{log}"
    );
    let kind = match db {
        Db::Postgres => "postgres",
        Db::Sqlite => "sqlite",
    };
    assert!(
        log.contains(kind),
        "the start-up line names the database kind:\n{log}"
    );
    assert!(
        !log.contains(password),
        "the log shows the database password:\n{log}"
    );
    assert!(
        !log.contains(&url),
        "the log shows the database URL:\n{log}"
    );
    assert!(
        !log.contains(secret.rsplit_once('.').unwrap().1),
        "the log shows a secret"
    );
}

#[tokio::test]
async fn a_failed_start_never_prints_the_database_password() {
    crate::helpers::within_deadline("a_failed_start_never_prints_the_database_password", async {
        // Nothing listens on port 1: connecting fails at once.
        let output = run(&[
            "--database-url",
            "postgres://postgres:s3cretpw@127.0.0.1:1/tokend",
            "--database-timeout",
            "1s",
            "migrate",
        ])
        .await;
        assert_ne!(output.status.code(), Some(0));
        let err = stderr(&output);
        assert!(!err.is_empty(), "stderr says why");
        assert!(!err.contains("s3cretpw"), "{err}");
    })
    .await
}

both_databases!(
    logs_and_metrics_never_show_secrets,
    token_create_prints_a_working_secret_last,
    token_create_refuses_invalid_input,
    migrate_prepares_an_empty_database,
    serve_stops_gracefully_on_sigterm_and_flushes_usage,
);

/// Everything a server prints or exposes while it handles secrets: debug
/// JSON logs and Prometheus metrics carry request ids and counts, never a
/// secret (nor its random part).
async fn logs_and_metrics_never_show_secrets(db: Db) {
    let test_db = TestDb::create(db).await;
    let (_, secret) = bootstrap_token(
        &test_db.url(),
        ORG,
        "caller",
        TokenType::Organization,
        "ORGANIZATION_OWNER",
        "",
    )
    .await;
    let listen = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(
        &test_db.url(),
        &listen,
        &["--log-format", "json", "--metrics-listen", &metrics],
        &[("RUST_LOG", "debug")],
    );
    server.wait_serving().await;
    let channel = server.channel();
    let mut client = pb::api_token_service_client::ApiTokenServiceClient::new(channel);
    let mut secrets = vec![secret.clone()];
    let created = client
        .create_api_token(with_bearer(&secret, organization_token("logged")))
        .await
        .expect("create")
        .into_inner();
    secrets.push(created.secret());
    let rotated = client
        .rotate_api_token(with_bearer(
            &secret,
            pb::RotateApiTokenRequest {
                organization_id: ORG.into(),
                token_id: created.id.clone(),
                grace_period_seconds: 0,
            },
        ))
        .await
        .expect("rotate")
        .into_inner();
    secrets.push(rotated.secret());
    let mut lookup = with_bearer(
        &secret,
        pb::ApiTokenSecret {
            token: rotated.secret(),
        },
    );
    lookup
        .metadata_mut()
        .insert("x-request-id", "test-req-42".parse().expect("ascii"));
    let answer = client.lookup_api_token(lookup).await.expect("lookup");
    assert_eq!(
        answer
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("test-req-42")
    );
    // Refused: the old secret as a caller and as a Lookup; a wrong one.
    let wrong = unknown_secret();
    secrets.push(wrong.clone());
    let _ = client
        .lookup_api_token(with_bearer(
            &created.secret(),
            pb::ApiTokenSecret {
                token: created.secret(),
            },
        ))
        .await
        .expect_err("old secret refused");
    let _ = client
        .lookup_api_token(with_bearer(
            &wrong,
            pb::ApiTokenSecret {
                token: wrong.clone(),
            },
        ))
        .await
        .expect_err("unknown secret refused");

    let text = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&metrics)
            .await
            .expect("metrics listener");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("send");
        let mut text = String::new();
        stream.read_to_string(&mut text).await.expect("read");
        text
    };
    for series in [
        "tokend_grpc_requests_total{method=\"tokend.v1.ApiTokenService/CreateApiToken\",code=\"OK\"} 1",
        "tokend_grpc_requests_total{method=\"tokend.v1.ApiTokenService/LookupApiToken\",code=\"UNAUTHENTICATED\"} 2",
        "tokend_grpc_request_duration_seconds_bucket",
        "tokend_auth_cache_hits_total",
        "tokend_auth_cache_misses_total",
        "tokend_auth_failures_total{reason=",
        "tokend_usage_flush_lag_seconds",
        "tokend_db_pool_connections{",
        "tokend_shed_requests_total 0",
    ] {
        assert!(text.contains(series), "metrics lack {series}:\n{text}");
    }

    let (code, log) = server.terminate().await;
    assert_eq!(code, Some(0), "log:\n{log}");
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    assert!(
        log.lines().any(|l| l.contains("test-req-42")),
        "the client's request id is in the logs:\n{log}"
    );
    // Database calls run in `db` spans, inside the call's span, and say
    // how long they took.
    let create_db_call = log.lines().find(|l| {
        l.contains("database call finished")
            && l.contains(r#""op":"create_token""#)
            && l.contains(r#""name":"call""#)
    });
    let create_db_call = create_db_call
        .unwrap_or_else(|| panic!("no timed db span for the create in the logs:\n{log}"));
    assert!(
        create_db_call.contains(r#""elapsed_us":"#),
        "{create_db_call}"
    );
    for secret in &secrets {
        let random = secret.rsplit_once('.').expect("secret shape").1;
        for (what, haystack) in [("logs", &log), ("metrics", &text)] {
            assert!(!haystack.contains(random), "the {what} show a secret");
        }
    }
}

/// The opt-out flag named in every refusal.
const ALLOW_INSECURE: &str = "--database-allow-insecure-transport";

/// Each command that connects, with `url`, then `extra` flags.
fn connecting_commands<'a>(url: &'a str, extra: &[&'a str]) -> Vec<Vec<&'a str>> {
    let commands: [&[&str]; 3] = [
        &["migrate"],
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            "token",
            "create",
            "--org",
            ORG,
            "--name",
            "n",
            "--type",
            "ORGANIZATION",
            "--role",
            "ORGANIZATION_OWNER",
        ],
    ];
    commands
        .iter()
        .map(|command| {
            let mut args = vec!["--database-url", url, "--database-timeout", "2s"];
            args.extend_from_slice(command);
            args.extend_from_slice(extra);
            args
        })
        .collect()
}

#[tokio::test]
async fn a_remote_database_without_certificate_verification_is_refused_before_connecting() {
    crate::helpers::within_deadline("a_remote_database_without_certificate_verification_is_refused_before_connecting", async {
    // Nothing is contacted: 192.0.2.1 is TEST-NET-1, the name is never resolved.
    for url in [
        "postgres://postgres:s3cretpw@192.0.2.1:5432/tokend",
        "postgres://postgres:s3cretpw@db.example.com/tokend?sslmode=disable",
        "postgres://postgres:s3cretpw@db.example.com/tokend?sslmode=require&sslrootcert=/ca.pem",
        "postgresql://postgres:s3cretpw@[2001:db8::1]/tokend?sslmode=prefer",
        "postgres://postgres:s3cretpw@localhost/tokend?host=10.0.0.1",
    ] {
        for args in connecting_commands(url, &[]) {
            let output = run(&args).await;
            let err = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains("sslmode="), "{args:?} names sslmode: {err}");
            assert!(err.contains("verify-full"), "{args:?}: {err}");
            assert!(
                err.contains(ALLOW_INSECURE),
                "{args:?} names the opt-out: {err}"
            );
            assert!(
                !err.contains("s3cretpw"),
                "{args:?} prints the password: {err}"
            );
            assert_eq!(stdout(&output), "", "{args:?}");
        }
    }
})
    .await
}

/// The test database's URL with its loopback host replaced by 0.0.0.0:
/// a host that is not loopback by the rule, which Linux still connects to
/// the local server.
fn not_loopback(url: &str) -> String {
    for local in ["@127.0.0.1:", "@localhost:"] {
        if url.contains(local) {
            return url.replacen(local, "@0.0.0.0:", 1);
        }
    }
    panic!("these tests need a PostgreSQL URL on 127.0.0.1 or localhost with a port, not {url}")
}

/// `url` with `query` appended.
fn with_query(url: &str, query: &str) -> String {
    let joint = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joint}{query}")
}

#[tokio::test]
async fn the_opt_out_connects_to_a_database_that_is_not_loopback() {
    crate::helpers::within_deadline(
        "the_opt_out_connects_to_a_database_that_is_not_loopback",
        async {
            let test_db = TestDb::create(Db::Postgres).await;
            let url = with_password(&not_loopback(&test_db.url()), "s3cretpw");
            let refused = run(&["--database-url", &url, "migrate"]).await;
            assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));

            let flag = run(&["--database-url", &url, "migrate", ALLOW_INSECURE]).await;
            assert_eq!(flag.status.code(), Some(0), "{}", stderr(&flag));
            let mut command = tokend(&["--database-url", &url, "migrate"]);
            command.env("TOKEND_DATABASE_ALLOW_INSECURE_TRANSPORT", "true");
            let env = tokio::task::spawn_blocking(move || command.output().expect("run tokend"))
                .await
                .expect("join");
            assert_eq!(env.status.code(), Some(0), "{}", stderr(&env));
            for output in [&flag, &env] {
                let err = stderr(output);
                assert!(
                    err.contains("without verifying"),
                    "a warning says so: {err}"
                );
                assert!(!err.contains("s3cretpw"), "{err}");
            }

            let created = run(&[
                "--database-url",
                &url,
                ALLOW_INSECURE,
                "token",
                "create",
                "--org",
                ORG,
                "--name",
                "over-0.0.0.0",
                "--type",
                "ORGANIZATION",
                "--role",
                "ORGANIZATION_OWNER",
            ])
            .await;
            assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));

            let listen = format!("127.0.0.1:{}", free_port());
            let server = Server::start_with(&url, &listen, &[ALLOW_INSECURE], &[]);
            server.wait_serving().await;
            let (code, log) = server.terminate().await;
            assert_eq!(code, Some(0), "{log}");
            let server = Server::start(&url, &listen);
            let (code, log, _) = server.wait_exit(std::time::Duration::from_secs(20)).await;
            assert_eq!(code, Some(2), "serve without the opt-out: {log}");
            assert!(log.contains(ALLOW_INSECURE), "{log}");
        },
    )
    .await
}

/// A CA certificate (PEM) that signed nothing the server holds.
fn stranger_ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "not the database's CA");
    let key = rcgen::KeyPair::generate().expect("key");
    params.self_signed(&key).expect("self-signed CA").pem()
}

/// Whether a command's stderr is the transport refusal.
fn refused_for_transport(output: &Output) -> bool {
    stderr(output).contains(ALLOW_INSECURE)
}

/// sslmode=verify-full (and verify-ca) pass the start-up check and then
/// really verify: the local server (ssl=on, Debian's self-signed snakeoil
/// certificate for `localhost`) is refused under a CA that did not sign its
/// certificate, and under the system roots; with its own certificate as the
/// root it is accepted, and verify-full also checks the name.
#[tokio::test]
async fn verify_full_passes_the_check_and_verifies_the_certificate() {
    crate::helpers::within_deadline(
        "verify_full_passes_the_check_and_verifies_the_certificate",
        async {
            let test_db = TestDb::create(Db::Postgres).await;
            let conn = test_db.connect().await;
            let show = |name: &'static str| {
                let conn = conn.clone();
                async move {
                    let row = conn
                        .query_one_raw(Statement::from_string(
                            conn.get_database_backend(),
                            format!("SHOW {name}"),
                        ))
                        .await
                        .expect("SHOW")
                        .expect("a row");
                    row.try_get::<String>("", name).expect("text")
                }
            };
            assert_eq!(
                show("ssl").await,
                "on",
                "this test needs the local PostgreSQL to serve TLS (ssl = on)"
            );
            let server_cert = show("ssl_cert_file").await;
            let _ = conn.close().await;

            let dir = tempfile::tempdir().expect("temp dir");
            let stranger = dir.path().join("stranger-ca.pem");
            std::fs::write(&stranger, stranger_ca_pem()).expect("write CA");
            let stranger = stranger.display().to_string();
            let local = test_db.url();
            let remote = not_loopback(&local);
            let migrate = |url: String| async move {
                run(&[
                    "--database-url",
                    &url,
                    "--database-timeout",
                    "2s",
                    "migrate",
                ])
                .await
            };

            // The server speaks TLS: unverified TLS works (loopback needs no opt-out).
            let plain = migrate(with_query(&local, "sslmode=require")).await;
            assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));

            for (what, url) in [
                (
                    "loopback, verify-full, stranger CA",
                    with_query(
                        &local,
                        &format!("sslmode=verify-full&sslrootcert={stranger}"),
                    ),
                ),
                (
                    "remote, verify-full, stranger CA",
                    with_query(
                        &remote,
                        &format!("sslmode=verify-full&sslrootcert={stranger}"),
                    ),
                ),
                (
                    "remote, verify-ca, stranger CA",
                    with_query(
                        &remote,
                        &format!("sslmode=verify-ca&sslrootcert={stranger}"),
                    ),
                ),
                (
                    "remote, verify-full, system roots",
                    with_query(&remote, "sslmode=verify-full"),
                ),
            ] {
                let output = migrate(url).await;
                let err = stderr(&output);
                assert_eq!(output.status.code(), Some(1), "{what}: {err}");
                assert!(
                    !refused_for_transport(&output),
                    "{what} passes the check: {err}"
                );
                assert!(
                    err.contains("certificate"),
                    "{what}: refused for its certificate: {err}"
                );
            }

            if !std::fs::exists(&server_cert).unwrap_or(false) || !server_cert.contains("snakeoil")
            {
                eprintln!(
                    "skipped: the server's certificate {server_cert:?} is not Debian's snakeoil"
                );
                return;
            }
            let trusted = |url: &str, mode: &str| {
                with_query(url, &format!("sslmode={mode}&sslrootcert={server_cert}"))
            };
            let by_name = local.replacen("@127.0.0.1:", "@localhost:", 1).replacen(
                "@0.0.0.0:",
                "@localhost:",
                1,
            );
            for (what, url, code) in [
                (
                    "verify-full to localhost",
                    trusted(&by_name, "verify-full"),
                    0,
                ),
                ("verify-ca to 0.0.0.0", trusted(&remote, "verify-ca"), 0),
                (
                    "verify-full to 0.0.0.0 (name mismatch)",
                    trusted(&remote, "verify-full"),
                    1,
                ),
            ] {
                let output = migrate(url).await;
                assert_eq!(
                    output.status.code(),
                    Some(code),
                    "{what}: {}",
                    stderr(&output)
                );
            }
        },
    )
    .await
}
