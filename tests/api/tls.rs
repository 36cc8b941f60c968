//! TLS and mutual TLS on the gRPC listener, with certificates made at test
//! time: a TLS client works and a plaintext one does not; with a client CA,
//! a certificate it signed works and no certificate, an expired one or one
//! from another CA is refused at the handshake.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokend::config::TlsFiles;
use tokend::pb;
use tokend::pb::api_token_service_client::ApiTokenServiceClient;
use tokend::server::Application;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::*;

struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    Ca {
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf certificate for `names` signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca, names: &[&str], expired: bool) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path
}

/// Starts a TLS server; returns its address, the bootstrap secret and the
/// running replica (dropped: stopped).
async fn start(
    dir: &Path,
    server_ca: &Ca,
    client_ca: Option<&Ca>,
) -> (SocketAddr, String, Replica, TestDb) {
    let (db, _, secret) = database_with_owner(Db::Sqlite, "bootstrap").await;
    let url = db.url();
    let (cert, key) = leaf(server_ca, &["localhost", "127.0.0.1"], false);
    let files = TlsFiles {
        cert: write(dir, "server.pem", &cert),
        key: write(dir, "server.key", &key),
        client_ca: client_ca.map(|ca| write(dir, "client-ca.pem", &ca.cert_pem)),
    };
    let mut settings = test_settings(&url);
    settings.tls = Some(files);
    let app = Application::build(settings)
        .await
        .expect("build TLS server");
    let addr = app.local_addr().expect("addr");
    let replica = Replica::serve_only(app).await;
    (addr, secret, replica, db)
}

/// A Get of nothing in particular over `channel`: Ok or NOT_FOUND means
/// the call reached the handler.
async fn call(addr: SocketAddr, tls: Option<ClientTlsConfig>, secret: &str) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = ApiTokenServiceClient::new(channel);
    let answer = client
        .list_api_tokens(with_bearer(
            secret,
            pb::ListApiTokensRequest {
                organization_id: ORG.into(),
                ..Default::default()
            },
        ))
        .await
        .map_err(|s| format!("call: {s:?}"))?;
    assert_eq!(answer.into_inner().total_count, 1);
    Ok(())
}

fn client_tls(server_ca: &Ca, identity: Option<(String, String)>) -> ClientTlsConfig {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&server_ca.cert_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    tls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_tls_clients_only() {
    let dir = tempfile::tempdir().expect("dir");
    let server_ca = ca("tokend test server CA");
    let (addr, secret, replica, _db) = start(dir.path(), &server_ca, None).await;
    call(addr, Some(client_tls(&server_ca, None)), &secret)
        .await
        .expect("a TLS client is served");
    assert!(
        call(addr, None, &secret).await.is_err(),
        "plaintext refused"
    );
    // A client that does not trust the server's CA refuses it.
    let stranger = ca("someone else");
    assert!(
        call(addr, Some(client_tls(&stranger, None)), &secret)
            .await
            .is_err()
    );
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_valid_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let server_ca = ca("tokend test server CA");
    let client_ca = ca("tokend test client CA");
    let other_ca = ca("another client CA");
    let (addr, secret, replica, _db) = start(dir.path(), &server_ca, Some(&client_ca)).await;

    let valid = leaf(&client_ca, &["service-a"], false);
    call(
        addr,
        Some(client_tls(&server_ca, Some(valid.clone()))),
        &secret,
    )
    .await
    .expect("a client certificate from the client CA is accepted");

    for (case, identity) in [
        ("no client certificate", None),
        (
            "expired client certificate",
            Some(leaf(&client_ca, &["service-a"], true)),
        ),
        (
            "client certificate from another CA",
            Some(leaf(&other_ca, &["service-a"], false)),
        ),
    ] {
        let refused = call(addr, Some(client_tls(&server_ca, identity)), &secret).await;
        let err = refused.expect_err(case);
        assert!(
            !err.starts_with("call: Status { code: Unauthenticated")
                && !err.starts_with("call: Status { code: PermissionDenied"),
            "{case}: refused at the handshake, not by a handler: {err}"
        );
    }
    // The server is unharmed and still serves the valid client.
    call(addr, Some(client_tls(&server_ca, Some(valid))), &secret)
        .await
        .expect("still serving");
    replica.stop().await;
}

#[test]
fn serve_rejects_half_and_missing_tls_settings() {
    let bin = env!("CARGO_BIN_EXE_tokend");
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
    let half = std::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert", "x.pem"])
        .env("TOKEND_DATABASE_URL", &url)
        .output()
        .expect("run");
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key"));
    let missing = std::process::Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .env("TOKEND_DATABASE_URL", &url)
        .output()
        .expect("run");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/cert.pem"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
