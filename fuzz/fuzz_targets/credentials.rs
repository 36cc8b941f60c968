//! What a call presents, read by the production parser
//! (`grpc::credentials`, used by the guard to admit a call and by
//! authentication): any header bytes, any peer address. The first byte
//! picks the TCP peer (none, an address from the input, or a loopback
//! form); the rest is one header per line, its first byte picking the name
//! (`authorization`, `x-forwarded-for`, another) and the rest its value.
//!
//! Never panics. An accepted secret came from the only `authorization`
//! header, after a Bearer or Api-Token scheme, re-formats to exactly the
//! text given, and is well-formed per `domain::secret` (it parses again to
//! the same id and digest). The client address is the peer unless the peer
//! is a trusted proxy (the default `--trusted-proxies`); then it is the
//! last `x-forwarded-for` hop when that is an address, else the peer.
//! Lookup's checks on its `token` (`service::lookup::presented_secret`)
//! accept exactly what the bearer parser accepts, and refuse the rest as
//! INVALID_ARGUMENT naming `token`.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokend::config::Settings;
use tokend::domain::secret::TokenPrefix;
use tokend::domain::secret::TokenSecret;
use tokend::grpc::credentials;
use tokend::service::Error;
use tokend::service::lookup::presented_secret;
use tonic::transport::server::TcpConnectInfo;

/// The settings `tokend serve` runs with by default (prefix, trusted
/// proxies).
static SETTINGS: LazyLock<Settings> =
    LazyLock::new(|| Settings::from_command_line(["serve"]).expect("default settings"));

/// The peer the first byte picks, and what is left of the input.
fn peer(data: &[u8]) -> Option<(Option<IpAddr>, &[u8])> {
    let (&which, rest) = data.split_first()?;
    Some(match which % 6 {
        0 => (None, rest),
        1 => {
            let (octets, rest) = rest.split_first_chunk::<4>()?;
            (Some(IpAddr::V4(Ipv4Addr::from(*octets))), rest)
        }
        2 => {
            let (octets, rest) = rest.split_first_chunk::<16>()?;
            (Some(IpAddr::V6(Ipv6Addr::from(*octets))), rest)
        }
        3 => (Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), rest),
        4 => (Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), rest),
        _ => (Some(IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped())), rest),
    })
}

fn headers(lines: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines.split(|&b| b == b'\n') {
        let Some((&which, value)) = line.split_first() else {
            continue;
        };
        let name = match which % 3 {
            0 => HeaderName::from_static("authorization"),
            1 => HeaderName::from_static("x-forwarded-for"),
            _ => HeaderName::from_static("x-other"),
        };
        // What HTTP/2 can carry: the values h2 hands to the server.
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(name, value);
        }
    }
    map
}

/// Lookup's checks agree with the secret parser on `text`.
fn lookup_agrees(prefix: &TokenPrefix, text: &str) {
    match (
        presented_secret(prefix, text),
        TokenSecret::parse(prefix, text),
    ) {
        (Ok(looked_up), Ok(parsed)) => {
            assert_eq!(looked_up.digest(), parsed.digest());
            assert_eq!(looked_up.reveal(prefix).expose(), text);
        }
        (Err(Error::InvalidArgument(violations)), Err(_)) => {
            assert!(!violations.is_empty());
            assert!(violations.iter().all(|v| v.field == "token"));
        }
        (looked_up, parsed) => panic!("Lookup {looked_up:?}, parser {parsed:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((peer, lines)) = peer(data) else {
        return;
    };
    let headers = headers(lines);
    let mut extensions = Extensions::new();
    if let Some(ip) = peer {
        extensions.insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::new(ip, 50051)),
        });
    }
    let prefix = &SETTINGS.token_prefix;
    let trusted = &SETTINGS.trusted_proxies;

    let presented = credentials::of(&headers, &extensions, prefix, trusted);
    let secret = credentials::secret(&headers, prefix);
    match (&presented.secret, &secret) {
        (Ok(a), Ok(b)) => assert_eq!(a.digest(), b.digest()),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("two readings of one header map disagree"),
    }
    let values: Vec<&HeaderValue> = headers.get_all("authorization").iter().collect();
    match secret {
        Ok(secret) => {
            assert_eq!(
                values.len(),
                1,
                "a secret from several authorization headers"
            );
            let value = values[0].to_str().expect("an accepted header is text");
            let (scheme, rest) = value.split_once(' ').expect("a scheme");
            assert!(
                scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("api-token"),
                "accepted scheme {scheme:?}"
            );
            let text = rest.trim_start_matches(' ');
            let revealed = secret.reveal(prefix);
            assert_eq!(revealed.expose(), text, "parse/re-format round trip");
            let again = TokenSecret::parse(prefix, revealed.expose()).expect("well-formed");
            assert_eq!(again.id(), secret.id());
            assert_eq!(again.digest(), secret.digest());
        }
        Err(reason) => {
            assert!(!reason.is_empty());
            match values.len() {
                0 => assert_eq!(reason, "no authorization header"),
                1 => assert_ne!(reason, "more than one authorization header"),
                _ => assert_eq!(reason, "more than one authorization header"),
            }
        }
    }

    for value in headers.values() {
        if let Ok(text) = value.to_str() {
            lookup_agrees(prefix, text);
            if let Some((_, rest)) = text.split_once(' ') {
                lookup_agrees(prefix, rest.trim_start_matches(' '));
            }
        }
    }

    let client = credentials::client_address(&headers, &extensions, trusted);
    assert_eq!(presented.client, client);
    let peer = peer.map(|ip| ip.to_canonical());
    match peer {
        Some(ip) if trusted.contains(ip) => {
            let last_hop = headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
                .map(|hop| hop.to_canonical());
            assert_eq!(client, last_hop.or(Some(ip)));
        }
        untrusted => assert_eq!(client, untrusted, "forwarding honoured from {untrusted:?}"),
    }
});
