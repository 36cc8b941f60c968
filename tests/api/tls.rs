//! TLS and mutual TLS on the gRPC listener, with certificates made at test
//! time: a TLS client works and a plaintext one does not; with a client CA,
//! a certificate it signed works and no certificate, an expired one or one
//! from another CA is refused at the handshake. Each refusal is the
//! server's, as the client sees it on the wire: a plaintext HTTP/2 client
//! reads no HTTP/2 from the TLS port, and a client with a bad certificate
//! receives the server's TLS alert naming what is wrong with it. Both
//! databases: a TLS handshake does not touch the database, but the calls
//! behind it do.

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

crate::both_databases!(
    tls_serves_tls_clients_only,
    mutual_tls_refuses_clients_without_a_valid_certificate,
    ext_authz_check_is_open_to_mutual_tls_clients_only,
);

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
    db: Db,
    dir: &Path,
    server_ca: &Ca,
    client_ca: Option<&Ca>,
) -> (SocketAddr, String, Replica, TestDb) {
    start_with(db, dir, server_ca, client_ca, |_| {}).await
}

/// [`start`] with adjusted settings.
async fn start_with(
    db: Db,
    dir: &Path,
    server_ca: &Ca,
    client_ca: Option<&Ca>,
    configure: impl FnOnce(&mut tokend::config::Settings),
) -> (SocketAddr, String, Replica, TestDb) {
    let (db, _, secret) = database_with_owner(db, "bootstrap").await;
    let url = db.url();
    let (cert, key) = leaf(server_ca, &["localhost", "127.0.0.1"], false);
    let files = TlsFiles {
        cert: write(dir, "server.pem", &cert),
        key: write(dir, "server.key", &key),
        client_ca: client_ca.map(|ca| write(dir, "client-ca.pem", &ca.cert_pem)),
    };
    let mut settings = test_settings(&url);
    settings.tls = Some(files);
    configure(&mut settings);
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

/// What a server at `addr` sends back to a plaintext HTTP/2 client (the
/// connection preface and an empty SETTINGS frame) until it closes the
/// connection, or for at most 3 s.
async fn plaintext_http2_answer(addr: SocketAddr) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("send the preface");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    answer
}

/// Whether `bytes` begin with an HTTP/2 SETTINGS frame (a 9-byte header of
/// type 4 on stream 0): a server speaking HTTP/2 sends one first.
fn starts_with_http2_settings(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[3] == 0x04 && bytes[5..9] == [0, 0, 0, 0]
}

/// Connects to `addr` over TLS as a client that trusts `server_ca` and
/// presents `identity`, offers HTTP/2 and sends nothing itself: the first
/// bytes the server sends after the handshake, or the TLS error the client
/// got instead. (In TLS 1.3 the server judges a client certificate after the
/// client has finished its side of the handshake, so its verdict on a bad
/// one is the first record the client reads.)
async fn first_read(
    addr: SocketAddr,
    server_ca: &Ca,
    identity: Option<(String, String)>,
) -> Result<Vec<u8>, String> {
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_ca.cert_pem.as_bytes()).expect("CA PEM"))
        .expect("trust the server CA");
    let builder = ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert PEM")],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM"),
            )
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        let n = tls.read(&mut buf).await.map_err(|e| e.to_string())?;
        buf.truncate(n);
        Ok(buf)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .unwrap_or_else(|_| Err("the server neither answered nor refused in 5 s".into()))
}

async fn tls_serves_tls_clients_only(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let server_ca = ca("tokend test server CA");
    let (addr, secret, replica, _db) = start(db, dir.path(), &server_ca, None).await;
    call(addr, Some(client_tls(&server_ca, None)), &secret)
        .await
        .expect("a TLS client is served");
    // A plaintext HTTP/2 client gets no HTTP/2 from the TLS port: the
    // server answers its preface with a TLS alert record (content type 21)
    // or nothing, and closes the connection.
    let answer = plaintext_http2_answer(addr).await;
    assert!(
        !starts_with_http2_settings(&answer),
        "the TLS port spoke HTTP/2 to a plaintext client: {answer:?}"
    );
    assert!(
        answer.is_empty() || answer[0] == 21,
        "the TLS port answered plaintext with something other than a TLS alert: {answer:?}"
    );
    // The same probe sees HTTP/2 from a plaintext server, so the above
    // is the TLS listener's refusal and not a blind probe.
    let plain = TestApp::spawn(db).await;
    let answer = plaintext_http2_answer(plain.addr).await;
    assert!(
        starts_with_http2_settings(&answer),
        "a plaintext server answered {answer:?}"
    );
    plain.stop().await;
    replica.stop().await;
}

async fn mutual_tls_refuses_clients_without_a_valid_certificate(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let server_ca = ca("tokend test server CA");
    let client_ca = ca("tokend test client CA");
    let other_ca = ca("another client CA");
    let (addr, secret, replica, _db) = start(db, dir.path(), &server_ca, Some(&client_ca)).await;

    let valid = leaf(&client_ca, &["service-a"], false);
    call(
        addr,
        Some(client_tls(&server_ca, Some(valid.clone()))),
        &secret,
    )
    .await
    .expect("a client certificate from the client CA is accepted");

    // A client that trusts the server and sends nothing after its side of
    // the handshake: whatever refusal it reads is the server's TLS alert
    // naming what is wrong with the certificate (rustls reports it as
    // "received fatal alert: <description>").
    for (case, identity, alert) in [
        ("no client certificate", None, "CertificateRequired"),
        (
            "expired client certificate",
            Some(leaf(&client_ca, &["service-a"], true)),
            "CertificateExpired",
        ),
        (
            "client certificate from another CA",
            Some(leaf(&other_ca, &["service-a"], false)),
            "UnknownCA",
        ),
    ] {
        let answer = first_read(addr, &server_ca, identity).await;
        assert_eq!(
            answer,
            Err(format!("received fatal alert: {alert}")),
            "{case}: the server's refusal"
        );
    }
    // The same client with a valid certificate reads the server's HTTP/2
    // SETTINGS: the refusals above are the server's judgement of the
    // certificates, not a client that cannot talk to it.
    let answer = first_read(addr, &server_ca, Some(valid.clone())).await;
    assert!(
        answer.as_deref().is_ok_and(starts_with_http2_settings),
        "a valid client certificate: {answer:?}"
    );
    // The server is unharmed and still serves the valid client.
    call(addr, Some(client_tls(&server_ca, Some(valid))), &secret)
        .await
        .expect("still serving");
    replica.stop().await;
}

/// Envoy's Check from a peer outside `--ext-authz-allowed-peers` (none
/// here): answered over mutual TLS, where the client's certificate is
/// verified, and refused (PERMISSION_DENIED) over plain TLS, where anyone
/// can connect.
async fn ext_authz_check_is_open_to_mutual_tls_clients_only(db: Db) {
    use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    let dir = tempfile::tempdir().expect("dir");
    let server_ca = ca("tokend test server CA");
    let client_ca = ca("tokend test client CA");
    let no_peers = |s: &mut tokend::config::Settings| s.ext_authz.allowed_peers.clear();
    let check = async |addr: SocketAddr, tls: ClientTlsConfig| {
        let channel = Channel::from_shared(format!("https://{addr}"))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect()
            .await
            .expect("connect");
        AuthorizationClient::new(channel)
            .check(CheckRequest::default())
            .await
            .map(|r| r.into_inner())
    };
    let (addr, _, replica, _db) =
        start_with(db, dir.path(), &server_ca, Some(&client_ca), no_peers).await;
    let valid = leaf(&client_ca, &["gateway"], false);
    let answer = check(addr, client_tls(&server_ca, Some(valid)))
        .await
        .expect("a verified mTLS client may call Check");
    assert_eq!(
        answer.status.map(|s| s.code),
        Some(tonic::Code::Unauthenticated as i32),
        "answered: a request without a credential is denied 401"
    );
    replica.stop().await;

    let (addr, _, replica, _db) = start_with(db, dir.path(), &server_ca, None, no_peers).await;
    let refused = check(addr, client_tls(&server_ca, None)).await;
    assert_eq!(
        refused.map_err(|s| s.code()).err(),
        Some(tonic::Code::PermissionDenied),
        "plain TLS from a peer that is not allowed"
    );
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
