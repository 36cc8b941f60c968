//! Settings: what `tokend serve` (and the other commands) run with, built
//! from the command line (`cli.rs`, the only place a default is written)
//! and checked here, once: every range and every cross-setting rule.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command, GlobalArgs, ServeArgs};
use crate::domain::net::{Cidr, TrustedProxies, parse_cidr_list};
use crate::domain::secret::TokenPrefix;
use crate::service::cache::CacheSettings;
use crate::service::feed::FeedSettings;
use crate::service::throttle::ThrottleSettings;
use crate::store::{DatabaseKind, StoreOptions};

/// How long SQLite waits on a lock another process holds before a
/// statement fails (and the call, within the database budget, answers
/// UNAVAILABLE). Not a setting: the database budget bounds the call anyway.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A setting that cannot be used, in words that name it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
    /// Within how long a use from the same address is not written again.
    pub usage_precision: Duration,
    /// How often health pings the database.
    pub health_check_interval: Duration,
    /// The credential cache.
    pub auth_cache: CacheSettings,
    /// The change feed that keeps it current.
    pub change_feed: FeedSettings,
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
    /// Envoy external authorization (`Authorization/Check`).
    pub ext_authz: ExtAuthzSettings,
}

/// Who may call ext_authz Check, and what an allowed request keeps.
#[derive(Debug, Clone)]
pub struct ExtAuthzSettings {
    /// Peers that may call Check (`--ext-authz-allowed-peers`).
    pub allowed_peers: Vec<Cidr>,
    /// Any peer may call Check (`--ext-authz-allow-remote`).
    pub allow_remote: bool,
    /// Allowed requests keep their `authorization` header.
    pub keep_authorization: bool,
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

impl TryFrom<(&GlobalArgs, &ServeArgs)> for Settings {
    type Error = ConfigError;

    fn try_from((global, args): (&GlobalArgs, &ServeArgs)) -> Result<Self, ConfigError> {
        let invalid = |message: &str| Err(ConfigError(message.to_owned()));
        if args.auth_cache_ttl > Duration::from_secs(3600) {
            return invalid("--auth-cache-ttl must be at most 1h");
        }
        if !(Duration::from_millis(5)..=Duration::from_secs(1)).contains(&args.change_poll_interval)
        {
            return invalid("--change-poll-interval must be between 5ms and 1s");
        }
        if args.auth_cache_negative_ttl > Duration::from_secs(1) {
            return invalid("--auth-cache-negative-ttl must be at most 1s");
        }
        if args.max_message_size < 1024 || args.max_in_flight == 0 {
            return invalid(
                "--max-message-size must be at least 1024 and --max-in-flight at least 1",
            );
        }
        if args.max_unauthenticated_in_flight == 0 || args.request_body_timeout.is_zero() {
            return invalid(
                "--max-unauthenticated-in-flight must be at least 1 and --request-body-timeout above 0",
            );
        }
        if !(32..=128).contains(&args.auth_failure_ipv6_prefix) {
            return invalid("--auth-failure-ipv6-prefix must be between 32 and 128");
        }
        let trusted_proxies = parse_cidr_list(&args.trusted_proxies)
            .map(TrustedProxies::new)
            .map_err(|e| ConfigError(format!("--trusted-proxies: {e}")))?;
        let ext_authz = ExtAuthzSettings {
            allowed_peers: parse_cidr_list(&args.ext_authz_allowed_peers)
                .map_err(|e| ConfigError(format!("--ext-authz-allowed-peers: {e}")))?,
            allow_remote: args.ext_authz_allow_remote,
            keep_authorization: args.ext_authz_keep_authorization,
        };
        Ok(Self {
            listen: args.listen,
            database_url: DatabaseUrl::try_from(global)?,
            store: StoreOptions::from_args(global),
            token_prefix: TokenPrefix::try_from(global)?,
            usage_flush_interval: args.usage_flush_interval,
            usage_precision: args.usage_precision,
            health_check_interval: args.health_check_interval,
            auth_cache: CacheSettings {
                capacity: args.auth_cache_capacity,
                ttl: args.auth_cache_ttl,
                negative_ttl: args.auth_cache_negative_ttl,
            },
            change_feed: FeedSettings {
                poll: args.change_poll_interval,
                connect_timeout: StoreOptions::from_args(global).acquire_timeout,
            },
            metrics_listen: args.metrics_listen,
            limits: Limits {
                max_message_size: args.max_message_size,
                request_timeout: args.request_timeout,
                max_in_flight: args.max_in_flight,
                max_unauthenticated_in_flight: args.max_unauthenticated_in_flight,
                max_in_flight_per_client: args.max_in_flight_per_client,
                request_body_timeout: args.request_body_timeout,
                max_concurrent_streams: args.max_concurrent_streams,
                max_header_list_size: args.max_header_list_size,
                keepalive_interval: args.keepalive_interval,
                keepalive_timeout: args.keepalive_timeout,
            },
            throttle: ThrottleSettings {
                threshold: args.auth_failure_threshold,
                window: args.auth_failure_window,
                ipv6_prefix: args.auth_failure_ipv6_prefix,
            },
            tls: match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: args.tls_client_ca.clone(),
                }),
                _ => None,
            },
            shutdown_grace_period: args.shutdown_grace_period,
            audit_retention: (!args.audit_retention.is_zero()).then_some(args.audit_retention),
            trusted_proxies,
            ext_authz,
        })
    }
}

impl Settings {
    /// The settings of `tokend [GLOBAL FLAGS] serve [FLAGS]` given as
    /// `args` (without the program name): the command line's defaults for
    /// everything not given, checked as for the real binary. For tests and
    /// tools that start a server in-process.
    pub fn from_command_line<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = std::iter::once(std::ffi::OsString::from("tokend"))
            .chain(args.into_iter().map(Into::into));
        let cli = Cli::try_parse_from(argv).map_err(|e| ConfigError(e.to_string()))?;
        match &cli.command {
            Command::Serve(serve) => Self::try_from((&cli.global, serve.as_ref())),
            _ => Err(ConfigError("not a `serve` command line".into())),
        }
    }
}

impl TryFrom<&GlobalArgs> for DatabaseUrl {
    type Error = ConfigError;

    fn try_from(global: &GlobalArgs) -> Result<Self, ConfigError> {
        Self::parse(&global.database_url).map_err(ConfigError)
    }
}

impl TryFrom<&GlobalArgs> for TokenPrefix {
    type Error = ConfigError;

    fn try_from(global: &GlobalArgs) -> Result<Self, ConfigError> {
        Self::parse(&global.token_prefix).map_err(ConfigError)
    }
}

impl StoreOptions {
    /// The pool settings every command connects with.
    pub fn from_args(global: &GlobalArgs) -> Self {
        Self {
            max_connections: global.database_max_connections,
            acquire_timeout: global.database_timeout,
            sqlite_busy_timeout: SQLITE_BUSY_TIMEOUT,
            allow_insecure_transport: global.database_allow_insecure_transport,
        }
    }

    /// The pool settings of a command line given without flags (the
    /// defaults, and `TOKEND_*` variables), for tools and tests that
    /// connect on their own.
    pub fn defaults() -> Result<Self, ConfigError> {
        let cli =
            Cli::try_parse_from(["tokend", "migrate"]).map_err(|e| ConfigError(e.to_string()))?;
        Ok(Self::from_args(&cli.global))
    }
}

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

    fn serve(args: &[&str]) -> Result<Settings, ConfigError> {
        Settings::from_command_line([&["serve"], args].concat())
    }

    #[test]
    fn retention_proxies_and_ipv6_prefix() {
        let defaults = serve(&[]).unwrap();
        assert_eq!(
            defaults.audit_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        for (ip, trusted) in [("127.0.0.6", true), ("::1", true), ("10.0.0.1", false)] {
            assert_eq!(
                defaults.trusted_proxies.contains(ip.parse().unwrap()),
                trusted,
                "{ip}"
            );
        }
        assert_eq!(defaults.throttle.ipv6_prefix, 64);

        let set = serve(&[
            "--audit-retention",
            "0",
            "--trusted-proxies",
            "10.0.0.0/8, fd00::/8",
            "--auth-failure-ipv6-prefix",
            "56",
        ])
        .unwrap();
        assert_eq!(set.audit_retention, None, "0 keeps audit rows forever");
        assert!(set.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(!set.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        assert_eq!(set.throttle.ipv6_prefix, 56);
        let none = serve(&["--trusted-proxies", ""]).unwrap();
        assert!(!none.trusted_proxies.contains("127.0.0.1".parse().unwrap()));

        for bad in [
            ["--trusted-proxies", "10.0.0.1/8"],
            ["--trusted-proxies", "loopback"],
            ["--auth-failure-ipv6-prefix", "16"],
            ["--auth-failure-ipv6-prefix", "129"],
        ] {
            assert!(serve(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_carry_their_flags_and_refuse_what_cannot_work() {
        let set = serve(&[
            "--max-unauthenticated-in-flight",
            "5",
            "--max-in-flight-per-client",
            "0",
            "--request-body-timeout",
            "750ms",
        ])
        .expect("valid")
        .limits;
        assert_eq!(set.max_unauthenticated_in_flight, 5);
        assert_eq!(set.max_in_flight_per_client, 0);
        assert_eq!(set.request_body_timeout, Duration::from_millis(750));
        for bad in [
            &["--max-unauthenticated-in-flight", "0"][..],
            &["--request-body-timeout", "0s"],
            &["--max-in-flight", "0"],
            &["--max-message-size", "1023"],
            &["--auth-cache-ttl", "61m"],
            &["--change-poll-interval", "4ms"],
            &["--change-poll-interval", "2s"],
            &["--auth-cache-negative-ttl", "2s"],
        ] {
            assert!(serve(bad).is_err(), "{bad:?}");
        }
        assert!(Settings::from_command_line(["migrate"]).is_err());
    }

    #[test]
    fn ext_authz_is_loopback_only_unless_opened() {
        let defaults = serve(&[]).unwrap().ext_authz;
        let allowed = |s: &ExtAuthzSettings, ip: &str| {
            s.allowed_peers
                .iter()
                .any(|c| c.contains(ip.parse().unwrap()))
        };
        for (ip, ok) in [
            ("127.0.0.1", true),
            ("127.0.0.2", true),
            ("::1", true),
            ("10.0.0.1", false),
        ] {
            assert_eq!(allowed(&defaults, ip), ok, "{ip}");
        }
        assert!(!defaults.allow_remote && !defaults.keep_authorization);
        let set = serve(&[
            "--ext-authz-allowed-peers",
            "127.0.0.1/32",
            "--ext-authz-allow-remote",
            "--ext-authz-keep-authorization",
        ])
        .unwrap()
        .ext_authz;
        assert!(allowed(&set, "127.0.0.1") && !allowed(&set, "127.0.0.2"));
        assert!(set.allow_remote && set.keep_authorization);
        assert!(serve(&["--ext-authz-allowed-peers", "127.0.0.1/8"]).is_err());
        let none = serve(&["--ext-authz-allowed-peers", ""]).unwrap().ext_authz;
        assert!(none.allowed_peers.is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
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
