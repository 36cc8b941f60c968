//! What a call presents, read from its HTTP/2 headers: the secret in
//! `authorization: Bearer <secret>`, and the client's address (the TCP peer,
//! or behind a trusted proxy the address it forwards). One parser, used by
//! the guard (to admit a call) and by authentication.

use std::net::IpAddr;

use http::{Extensions, HeaderMap};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::domain::credential;
use crate::domain::net::TrustedProxies;
use crate::domain::secret::{TokenPrefix, TokenSecret};
use crate::service::authenticate::Credentials;

/// The credentials of a call: its secret and client address.
pub fn of(
    headers: &HeaderMap,
    extensions: &Extensions,
    prefix: &TokenPrefix,
    trusted: &TrustedProxies,
) -> Credentials {
    Credentials {
        secret: secret(headers, prefix),
        client: client_address(headers, extensions, trusted),
    }
}

/// The secret in `authorization: Bearer <secret>` (or `Api-Token <secret>`,
/// Dynatrace's scheme; schemes are case-insensitive), parsed without I/O;
/// or why there is none (for metrics and the audit trail, never the
/// client).
pub fn secret(headers: &HeaderMap, prefix: &TokenPrefix) -> Result<TokenSecret, &'static str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or("no authorization header")?;
    // Two credentials are ambiguous: a proxy that appends its own header
    // must not have the first one (the client's) win by accident.
    if values.next().is_some() {
        return Err("more than one authorization header");
    }
    let value = value
        .to_str()
        .map_err(|_| "malformed authorization header")?;
    credential::secret(value, prefix)
}

/// The TCP peer of a call, from the connection info tonic puts in its
/// extensions (plain or TLS).
pub fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|info| info.get_ref().remote_addr())
        })
        .map(|addr| addr.ip().to_canonical())
}

/// The client's address: the last `x-forwarded-for` hop when the peer is a
/// trusted proxy (by default loopback: the sidecar in the same pod), else
/// the peer itself (see [`TrustedProxies::client`]).
pub fn client_address(
    headers: &HeaderMap,
    extensions: &Extensions,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let last_hop = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|hop| hop.trim().parse::<IpAddr>().ok());
    trusted.client(peer(extensions), last_hop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::TokenId;
    use crate::domain::net::parse_cidr_list;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("authorization", value.parse().unwrap());
        map
    }

    #[test]
    fn bearer_shapes() {
        let prefix = TokenPrefix::parse("tokend").unwrap();
        let secret = TokenSecret::generate(TokenId::generate(1, [1; 10])).unwrap();
        let text = secret.reveal(&prefix).into_exposed();
        for good in [
            format!("Bearer {text}"),
            format!("bearer {text}"),
            format!("BEARER  {text}"),
            format!("Api-Token {text}"),
            format!("api-token {text}"),
        ] {
            assert!(super::secret(&headers(&good), &prefix).is_ok(), "{good}");
        }
        for bad in [
            text.clone(),
            format!("Basic {text}"),
            format!("Bearer{text}"),
            "Bearer".to_owned(),
            "Bearer ".to_owned(),
            format!("Bearer {text} extra"),
            format!("Token {text}"),
        ] {
            assert!(super::secret(&headers(&bad), &prefix).is_err(), "{bad}");
        }
        assert!(super::secret(&HeaderMap::new(), &prefix).is_err());
        let mut twice = headers(&format!("Bearer {text}"));
        twice.append("authorization", format!("Bearer {text}").parse().unwrap());
        assert_eq!(
            super::secret(&twice, &prefix).err(),
            Some("more than one authorization header")
        );
    }

    #[test]
    fn only_trusted_peers_name_the_client() {
        let trusted = TrustedProxies::new(parse_cidr_list("127.0.0.0/8").unwrap());
        let mut map = HeaderMap::new();
        map.append("x-forwarded-for", "6.6.6.6, 10.1.2.3".parse().unwrap());
        let mut extensions = Extensions::new();
        assert_eq!(client_address(&map, &extensions, &trusted), None);
        let info = |ip: &str| TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(format!("{ip}:5000").parse().unwrap()),
        };
        extensions.insert(info("127.0.0.1"));
        assert_eq!(
            client_address(&map, &extensions, &trusted),
            Some("10.1.2.3".parse().unwrap()),
            "the last hop, from a trusted proxy"
        );
        extensions.insert(info("192.0.2.9"));
        assert_eq!(
            client_address(&map, &extensions, &trusted),
            Some("192.0.2.9".parse().unwrap()),
            "forwarding from anyone else is ignored"
        );
    }
}
