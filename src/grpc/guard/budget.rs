//! The in-flight budgets a call draws from, decided from its headers alone
//! (see the guard's module documentation for why these three).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http::{HeaderMap, Request};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::domain::net::TrustedProxies;
use crate::domain::net::truncate;
use crate::domain::secret::TokenPrefix;
use crate::grpc::credentials;
use crate::grpc::ext_authz::{CHECK_PATH, Callers};
use crate::telemetry::metrics;

/// Why a call was refused at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// Every main slot is taken (`--max-in-flight`).
    InFlight,
    /// Every slot for calls without a well-formed credential is taken
    /// (`--max-unauthenticated-in-flight`).
    Unauthenticated,
    /// This client address holds its share (`--max-in-flight-per-client`).
    PerClient,
}

impl Shed {
    /// The `budget` label of `tokend_shed_requests_by_budget_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::InFlight => metrics::SHED_IN_FLIGHT,
            Self::Unauthenticated => metrics::SHED_UNAUTHENTICATED,
            Self::PerClient => metrics::SHED_PER_CLIENT,
        }
    }

    /// What the caller is told. A full shared budget is the server's
    /// condition (UNAVAILABLE: retry, perhaps on another replica); a client
    /// over its own share is that client's (RESOURCE_EXHAUSTED, HTTP 429 on
    /// REST, like the failed-authentication throttle).
    pub fn status(self) -> tonic::Status {
        match self {
            Self::InFlight => tonic::Status::unavailable(
                "server overloaded: too many calls in flight; retry with backoff",
            ),
            Self::Unauthenticated => tonic::Status::unavailable(
                "server overloaded: too many calls without a well-formed credential in flight; \
                 retry with backoff",
            ),
            Self::PerClient => tonic::Status::resource_exhausted(
                "too many calls in flight from this client address; retry with backoff",
            ),
        }
    }
}

/// What an admitted call holds until it finishes; dropping it frees the
/// slots.
#[derive(Debug)]
pub struct Ticket {
    _permit: OwnedSemaphorePermit,
    _client: Option<ClientSlot>,
}

/// Who a call is counted against: the same client the failed-authentication
/// throttle and the audit trail see.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Peers whose `x-forwarded-for` names the client (`--trusted-proxies`).
    pub trusted_proxies: TrustedProxies,
    /// IPv6 clients are grouped by this prefix (`--auth-failure-ipv6-prefix`).
    pub ipv6_prefix: u8,
}

/// The budgets every (non-exempt) call draws from. Shared by all
/// connections.
#[derive(Debug, Clone)]
pub struct Budgets {
    main: Arc<Semaphore>,
    unauthenticated: Arc<Semaphore>,
    per_client: Option<Arc<ClientSlots>>,
    prefix: TokenPrefix,
    clients: Clients,
    gateways: Callers,
}

impl Budgets {
    /// Budgets sized by `limits`, for credentials of `prefix`, with clients
    /// told apart as `clients` says.
    /// `gateways` are the callers admitted to ext_authz Check.
    pub fn new(limits: &Limits, prefix: TokenPrefix, clients: Clients, gateways: Callers) -> Self {
        let main = limits.max_in_flight.max(1);
        let per_client = match limits.max_in_flight_per_client {
            0 => None,
            cap => Some(Arc::new(ClientSlots::new(cap.min(main)))),
        };
        Self {
            main: Arc::new(Semaphore::new(main)),
            unauthenticated: Arc::new(Semaphore::new(limits.max_unauthenticated_in_flight.max(1))),
            per_client,
            prefix,
            clients,
            gateways,
        }
    }

    /// Takes the slots `request` needs, or says which budget is full.
    pub fn admit<B>(&self, request: &Request<B>) -> Result<Ticket, Shed> {
        // A gateway's Check carries no credential in its own headers (the
        // client's is in the message) and speaks for many clients: from an
        // admitted gateway it draws on the main budget without a per-client
        // share (the throttle still sees each client). From anyone else it
        // is refused in the handler, and waits in the small budget.
        if request.uri().path() == CHECK_PATH && self.gateways.admits(request.extensions()) {
            let permit = self
                .main
                .clone()
                .try_acquire_owned()
                .map_err(|_| Shed::InFlight)?;
            return Ok(Ticket {
                _permit: permit,
                _client: None,
            });
        }
        if !has_credential_shape(request.headers(), &self.prefix) {
            let permit = self
                .unauthenticated
                .clone()
                .try_acquire_owned()
                .map_err(|_| Shed::Unauthenticated)?;
            return Ok(Ticket {
                _permit: permit,
                _client: None,
            });
        }
        let permit = self
            .main
            .clone()
            .try_acquire_owned()
            .map_err(|_| Shed::InFlight)?;
        let client = match &self.per_client {
            None => None,
            Some(slots) => Some(
                slots
                    .take(self.client_key(request))
                    .ok_or(Shed::PerClient)?,
            ),
        };
        Ok(Ticket {
            _permit: permit,
            _client: client,
        })
    }
}

/// Whether the headers carry exactly one `authorization: Bearer <secret>`
/// whose secret is well-formed for this deployment: prefix, id shape,
/// encoding and checksum, checked without I/O by the parser authentication
/// uses. Whether the secret is real is still decided by authentication.
pub fn has_credential_shape(headers: &HeaderMap, prefix: &TokenPrefix) -> bool {
    credentials::secret(headers, prefix).is_ok()
}

impl Budgets {
    /// The client address as authentication and the audit trail see it
    /// (`credentials::client_address`: behind a trusted proxy, the client it forwards),
    /// with IPv6 grouped by the throttle's prefix (one host commonly holds
    /// a whole /64) and IPv4-mapped IPv6 read as IPv4. `None` when the
    /// transport knows no address.
    fn client_key<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        let ip = credentials::client_address(
            request.headers(),
            request.extensions(),
            &self.clients.trusted_proxies,
        )?;
        Some(group(ip, self.clients.ipv6_prefix))
    }
}

/// IPv4 as is; IPv6 by its first `ipv6_prefix` bits.
fn group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        v6 => truncate(v6, ipv6_prefix),
    }
}

/// In-flight calls per client key. An entry exists only while its client
/// has calls in flight, so the map holds at most `--max-in-flight` entries.
#[derive(Debug)]
struct ClientSlots {
    cap: usize,
    counts: Mutex<HashMap<Option<IpAddr>, usize>>,
}

/// One call's slot in [`ClientSlots`]; released on drop.
#[derive(Debug)]
struct ClientSlot {
    slots: Arc<ClientSlots>,
    key: Option<IpAddr>,
}

impl ClientSlots {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn take(self: &Arc<Self>, key: Option<IpAddr>) -> Option<ClientSlot> {
        // The map is consistent after every statement: a panic elsewhere
        // while it was locked leaves nothing half-done, so poisoning is moot.
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            slots: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self
            .slots
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::TokenId;
    use crate::domain::secret::TokenSecret;
    use tonic::transport::server::TcpConnectInfo;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("authorization", value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_well_formed_credentials_count_as_credentials() {
        let prefix = TokenPrefix::parse("tokend").unwrap();
        let secret = TokenSecret::generate(TokenId::generate(1, [1; 10])).unwrap();
        let text = secret.reveal(&prefix).into_exposed();
        for good in [
            format!("Bearer {text}"),
            format!("bearer  {text}"),
            format!("Api-Token {text}"),
        ] {
            assert!(has_credential_shape(&headers(&[&good]), &prefix), "{good}");
        }
        let other_prefix = TokenPrefix::parse("other").unwrap();
        assert!(!has_credential_shape(
            &headers(&[&format!("Bearer {text}")]),
            &other_prefix
        ));
        let mut wrong_sum = text.clone();
        let last = wrong_sum.pop().unwrap();
        wrong_sum.push(if last == 'A' { 'B' } else { 'A' });
        for bad in [
            String::new(),
            text.clone(),
            format!("Basic {text}"),
            format!("Bearer{text}"),
            "Bearer ".to_owned(),
            "Bearer tokend.x.y".to_owned(),
            format!("Bearer {wrong_sum}"),
        ] {
            assert!(!has_credential_shape(&headers(&[&bad]), &prefix), "{bad:?}");
        }
        assert!(!has_credential_shape(&HeaderMap::new(), &prefix));
        let twice = format!("Bearer {text}");
        assert!(!has_credential_shape(&headers(&[&twice, &twice]), &prefix));
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_prefix_and_mapped_ipv4_is_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(group(ip("2001:db8:1:2:aaaa::1"), 64), ip("2001:db8:1:2::"));
        assert_eq!(group(ip("2001:db8:1:2:ffff::9"), 64), ip("2001:db8:1:2::"));
        assert_ne!(group(ip("2001:db8:1:3::1"), 64), ip("2001:db8:1:2::"));
        assert_eq!(group(ip("2001:db8:1:3::1"), 56), ip("2001:db8:1::"));
        assert_eq!(group(ip("::ffff:10.1.2.3"), 64), ip("10.1.2.3"));
        assert_eq!(group(ip("10.1.2.3"), 64), ip("10.1.2.3"));
    }

    #[test]
    fn client_slots_are_capped_per_key_and_freed_on_drop() {
        let slots = Arc::new(ClientSlots::new(2));
        let a = Some("10.0.0.1".parse().unwrap());
        let b = Some("10.0.0.2".parse().unwrap());
        let first = slots.take(a).expect("first");
        let second = slots.take(a).expect("second");
        assert!(slots.take(a).is_none(), "a third is over the cap");
        let other = slots.take(b).expect("another client has its own share");
        drop(first);
        let again = slots.take(a).expect("a freed slot is reusable");
        drop((second, again, other));
        assert_eq!(slots.clients(), 0, "idle clients leave no entry");
    }

    #[test]
    fn budgets_route_by_credential_shape() {
        let limits = Limits {
            max_in_flight: 2,
            max_unauthenticated_in_flight: 1,
            max_in_flight_per_client: 1,
            ..crate::config::Settings::from_command_line(["serve"])
                .unwrap()
                .limits
        };
        let prefix = TokenPrefix::parse("tokend").unwrap();
        let clients = Clients {
            trusted_proxies: TrustedProxies::new(
                crate::domain::net::parse_cidr_list("127.0.0.0/8").unwrap(),
            ),
            ipv6_prefix: 64,
        };
        let settings = crate::config::Settings::from_command_line(["serve"]).unwrap();
        let budgets = Budgets::new(&limits, prefix.clone(), clients, Callers::new(&settings));
        let secret = TokenSecret::generate(TokenId::generate(1, [1; 10])).unwrap();
        let bearer = format!("Bearer {}", secret.reveal(&prefix).into_exposed());
        let request = |auth: Option<&str>, forwarded: &str| {
            let mut builder = Request::builder()
                .uri("/tokend.v1.ApiTokenService/GetApiToken")
                .header("x-forwarded-for", forwarded)
                .extension(TcpConnectInfo {
                    local_addr: None,
                    remote_addr: Some(([127, 0, 0, 1], 4000).into()),
                });
            if let Some(auth) = auth {
                builder = builder.header("authorization", auth);
            }
            builder.body(()).unwrap()
        };
        let anonymous = budgets
            .admit(&request(None, "10.0.0.1"))
            .expect("anonymous");
        assert_eq!(
            budgets
                .admit(&request(Some("Bearer nope"), "10.0.0.2"))
                .err(),
            Some(Shed::Unauthenticated)
        );
        let one = budgets
            .admit(&request(Some(&bearer), "10.0.0.1"))
            .expect("main");
        assert_eq!(
            budgets.admit(&request(Some(&bearer), "10.0.0.1")).err(),
            Some(Shed::PerClient)
        );
        let two = budgets
            .admit(&request(Some(&bearer), "10.0.0.2"))
            .expect("main");
        assert_eq!(
            budgets.admit(&request(Some(&bearer), "10.0.0.3")).err(),
            Some(Shed::InFlight)
        );
        drop((anonymous, one, two));
        budgets.admit(&request(None, "10.0.0.1")).expect("freed");
        budgets
            .admit(&request(Some(&bearer), "10.0.0.1"))
            .expect("freed");
    }
}
