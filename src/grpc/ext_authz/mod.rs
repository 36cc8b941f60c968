//! `envoy.service.auth.v3.Authorization`: tokend as the gateway's external
//! authorizer. Check extracts what the HTTP request presented (its
//! `authorization` header, the client address Envoy saw, the route's
//! context extensions), calls one use case (`Tokend::check`) and converts
//! the verdict into Envoy's terms: an OK response that sets the identity
//! headers on the upstream request, or a denied HTTP response.
//!
//! Check carries no caller token, so only the callers [`Callers`] admits
//! may ask it (anyone else could use it to test stolen secrets).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{Authorization, CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use http::Extensions;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Response, Status};

use super::credentials;
use super::error::log;
use crate::config::Settings;
use crate::domain::credential;
use crate::domain::net::Cidr;
use crate::domain::permission::route::Requirement;
use crate::service::check::Verdict;
use crate::service::{Credentials, Tokend};

mod answer;

use answer::{Denial, allowed, denied};

/// The request path of Check, as the guard sees it.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// Header names set on an allowed request (client-sent values replaced).
pub const TOKEN_ID: &str = "x-tokend-token-id";
/// See [`TOKEN_ID`].
pub const ORGANIZATION_ID: &str = "x-tokend-organization-id";
/// See [`TOKEN_ID`].
pub const TOKEN_TYPE: &str = "x-tokend-token-type";
/// The token's role bindings, `ROLE:resource` comma-separated (the
/// resources of Lookup's scopes).
pub const ROLES: &str = "x-tokend-roles";
/// Every identity header tokend sets; any other `x-tokend-` header a
/// client sent is removed, so an upstream can trust the whole prefix.
const IDENTITY_PREFIX: &str = "x-tokend-";

/// Who may call Check: peers in `--ext-authz-allowed-peers`, clients
/// with a verified certificate when mutual TLS is on, or anyone with
/// `--ext-authz-allow-remote`.
#[derive(Debug, Clone)]
pub struct Callers {
    allowed_peers: Vec<Cidr>,
    allow_remote: bool,
    mtls_clients: bool,
}

impl Callers {
    /// The callers `settings` admit: its ext_authz settings, and the
    /// clients of `--tls-client-ca` when mutual TLS is on.
    pub fn new(settings: &Settings) -> Self {
        Self {
            allowed_peers: settings.ext_authz.allowed_peers.clone(),
            allow_remote: settings.ext_authz.allow_remote,
            mtls_clients: settings
                .tls
                .as_ref()
                .is_some_and(|tls| tls.client_ca.is_some()),
        }
    }

    /// Whether the connection a call came on (its `extensions`) may ask.
    pub fn admits(&self, extensions: &Extensions) -> bool {
        if self.allow_remote || (self.mtls_clients && has_client_certificate(extensions)) {
            return true;
        }
        credentials::peer(extensions)
            .is_some_and(|ip| self.allowed_peers.iter().any(|range| range.contains(ip)))
    }
}

/// Whether the TLS connection presented a client certificate. With
/// `--tls-client-ca` set, tonic's TLS refuses every connection whose
/// certificate that CA did not sign, so one present here is verified.
fn has_client_certificate(extensions: &Extensions) -> bool {
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .is_some_and(|certs| !certs.is_empty())
}

/// `envoy.service.auth.v3.Authorization` over the use cases.
#[derive(Debug, Clone)]
pub struct ExtAuthzService {
    tokend: Arc<Tokend>,
    callers: Callers,
    keep_authorization: bool,
}

impl ExtAuthzService {
    /// The service over `tokend`, as `settings` configure it.
    pub fn new(tokend: Arc<Tokend>, settings: &Settings) -> Self {
        Self {
            tokend,
            callers: Callers::new(settings),
            keep_authorization: settings.ext_authz.keep_authorization,
        }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzService {
    #[tracing::instrument(level = "debug", name = "ext_authz.Check", skip_all)]
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let (_, extensions, message) = request.into_parts();
        if !self.callers.admits(&extensions) {
            return Err(Status::permission_denied(
                "ext_authz Check is not open to this peer (--ext-authz-allowed-peers, \
                 --tls-client-ca, --ext-authz-allow-remote)",
            ));
        }
        let Parts {
            credentials,
            requirement,
            client_headers,
        } = parts(message, &self.tokend);
        let verdict = self
            .tokend
            .within_budget(self.tokend.check(credentials, requirement))
            .await;
        Ok(Response::new(match verdict {
            Ok(Verdict::Allowed(caller)) => {
                allowed(&caller, &client_headers, self.keep_authorization)
            }
            Ok(Verdict::Forbidden) => denied(Denial::Forbidden),
            Ok(Verdict::Misconfigured) => denied(Denial::Misconfigured),
            Err(err) => {
                log(&err);
                denied(Denial::from(&err))
            }
        }))
    }
}

/// What Check reads from its request.
struct Parts {
    credentials: Credentials,
    requirement: Result<Requirement, crate::domain::permission::route::Misconfigured>,
    /// The `x-tokend-*` headers the client sent (to remove them).
    client_headers: Vec<String>,
}

fn parts(message: CheckRequest, tokend: &Tokend) -> Parts {
    let attributes = message.attributes.unwrap_or_default();
    let client = attributes
        .source
        .and_then(|peer| peer.address)
        .and_then(|address| address.address)
        .and_then(|address| match address {
            envoy_types::ext_authz::v3::pb::Address::SocketAddress(socket) => {
                socket.address.parse::<IpAddr>().ok()
            }
            _ => None,
        })
        .map(|ip| ip.to_canonical());
    let mut headers = attributes
        .request
        .and_then(|request| request.http)
        .map(request_headers)
        .unwrap_or_default();
    // Envoy joins repeated headers with ","; such a value never parses as
    // one secret, so two credentials are refused as for gRPC.
    // Wiped when Check returns, like every secret tokend holds.
    let authorization = headers.remove("authorization").map(zeroize::Zeroizing::new);
    let secret = match &authorization {
        None => Err("no authorization header"),
        Some(value) => credential::secret(value, tokend.prefix()),
    };
    let client_headers = headers
        .keys()
        .filter(|name| name.starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    Parts {
        credentials: Credentials { secret, client },
        requirement: Requirement::parse(&attributes.context_extensions),
        client_headers,
    }
}

/// The HTTP request's headers by lowercase name. Envoy sends them in
/// `headers` (repeated names joined by ","), or with `encode_raw_headers`
/// in `header_map` (one entry per header, raw bytes), which is folded the
/// same way: two `authorization` headers then never parse as one secret.
fn request_headers(http: HttpRequest) -> HashMap<String, String> {
    let Some(map) = http.header_map else {
        return http.headers;
    };
    let mut headers: HashMap<String, String> = HashMap::new();
    for header in map.headers {
        let value = if header.raw_value.is_empty() {
            header.value
        } else {
            String::from_utf8_lossy(&header.raw_value).into_owned()
        };
        headers
            .entry(header.key.to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_header_maps_fold_like_envoys_header_field() {
        use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
        let header = |key: &str, raw: &str| HeaderValue {
            key: key.into(),
            value: String::new(),
            raw_value: raw.as_bytes().to_vec(),
        };
        let http = HttpRequest {
            header_map: Some(HeaderMap {
                headers: vec![
                    header("Authorization", "Bearer a"),
                    header("authorization", "Bearer b"),
                    header("x-one", "1"),
                ],
            }),
            ..Default::default()
        };
        let headers = request_headers(http);
        assert_eq!(headers["authorization"], "Bearer a,Bearer b");
        assert_eq!(headers["x-one"], "1");
        let plain = HttpRequest {
            headers: HashMap::from([("authorization".to_owned(), "Bearer a".to_owned())]),
            ..Default::default()
        };
        assert_eq!(request_headers(plain)["authorization"], "Bearer a");
    }
}
