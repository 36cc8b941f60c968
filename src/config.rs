//! One Settings struct, validated once at start-up.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::secret::TokenPrefix;
use crate::service::authenticate::TrustedProxies;
use crate::service::cache::CacheSettings;
use crate::service::throttle::ThrottleSettings;
use crate::store::{DatabaseKind, StoreOptions};

/// A database URL. `Debug` and `Display` show only the database kind, so
/// credentials in the URL never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    kind: DatabaseKind,
}

impl DatabaseUrl {
    /// Parses a `sqlite:` or `postgres://` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let kind = DatabaseKind::of_url(url).ok_or_else(|| {
            "database URL must start with sqlite:, postgres:// or postgresql://".to_owned()
        })?;
        Ok(Self {
            url: url.to_owned(),
            kind,
        })
    }

    /// The URL, for the one place that connects.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The database kind.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}://[redacted])", self.kind.as_str())
    }
}

/// Everything `tokend serve` needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// The database.
    pub database_url: DatabaseUrl,
    /// Pool settings.
    pub store: StoreOptions,
    /// The fixed first part of every secret.
    pub token_prefix: TokenPrefix,
    /// How often buffered usage (`lastUsedAt`) is written.
    pub usage_flush_interval: Duration,
    /// How often health pings the database.
    pub health_check_interval: Duration,
    /// The credential cache.
    pub auth_cache: CacheSettings,
    /// Where Prometheus metrics are served (`/metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Resource limits.
    pub limits: Limits,
    /// Failed-authentication throttling.
    pub throttle: ThrottleSettings,
    /// TLS on the gRPC listener, if configured.
    pub tls: Option<TlsFiles>,
    /// How long shutdown waits for in-flight calls before abandoning them.
    pub shutdown_grace_period: Duration,
    /// How long audit rows are kept; `None` keeps them forever.
    pub audit_retention: Option<Duration>,
    /// The proxies whose `x-forwarded-for` names the client.
    pub trusted_proxies: TrustedProxies,
}

/// Limits that keep one client from exhausting the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request message accepted, decoded (larger: OUT_OF_RANGE).
    pub max_message_size: usize,
    /// Deadline of a call that brings none (`grpc-timeout` shortens it).
    pub request_timeout: Duration,
    /// Calls running at once (health excepted); more are shed, UNAVAILABLE.
    pub max_in_flight: usize,
    /// Calls without a well-formed credential running at once, apart from
    /// `max_in_flight`; more are shed, UNAVAILABLE.
    pub max_unauthenticated_in_flight: usize,
    /// Calls of `max_in_flight` one client address may hold (at most
    /// `max_in_flight`; 0: no per-client cap); more get RESOURCE_EXHAUSTED.
    pub max_in_flight_per_client: usize,
    /// Longest wait between a call's headers and the end of its body; then
    /// DEADLINE_EXCEEDED.
    pub request_body_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Largest request header block (the bearer secret travels there).
    pub max_header_list_size: u32,
    /// HTTP/2 keepalive ping interval (the ping must be answered within
    /// `keepalive_timeout` or the connection is closed).
    pub keepalive_interval: Duration,
    /// See `keepalive_interval`.
    pub keepalive_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            request_timeout: Duration::from_secs(5),
            max_in_flight: 256,
            max_unauthenticated_in_flight: 32,
            max_in_flight_per_client: 64,
            request_body_timeout: Duration::from_secs(2),
            max_concurrent_streams: 128,
            max_header_list_size: 16 * 1024,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// PEM files for TLS on the gRPC listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// Server private key.
    pub key: PathBuf,
    /// CA whose certificates clients must present (mutual TLS), if any.
    pub client_ca: Option<PathBuf>,
}

impl Settings {
    /// Settings for `url` with every other value at its default.
    pub fn with_database(url: DatabaseUrl) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url: url,
            store: StoreOptions::default(),
            token_prefix: TokenPrefix::default(),
            usage_flush_interval: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(2),
            auth_cache: CacheSettings::default(),
            metrics_listen: None,
            limits: Limits::default(),
            throttle: ThrottleSettings::default(),
            tls: None,
            shutdown_grace_period: Duration::from_secs(20),
            audit_retention: Some(DEFAULT_AUDIT_RETENTION),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// `--audit-retention`'s default: 90 days.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// Parses a duration written as a number with a unit: `250ms`, `5s`, `2m`,
/// `1h`, `90d`. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 250ms, 5s, 2m, 1h or 90d"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit; use ms, s, m, h or d"
            ));
        }
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("90d"), Ok(DEFAULT_AUDIT_RETENTION));
        assert_eq!(parse_duration("0d"), Ok(Duration::ZERO));
        assert!(parse_duration("1w").is_err());
    }

    #[test]
    fn database_url_debug_hides_credentials() {
        let url = DatabaseUrl::parse("postgres://user:hunter2@db:5432/tokend").unwrap();
        assert_eq!(format!("{url:?}"), "DatabaseUrl(postgres://[redacted])");
        assert!(DatabaseUrl::parse("mysql://x").is_err());
    }
}
