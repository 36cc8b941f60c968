//! Command-line definitions: every setting is a flag with an environment
//! variable fallback and a default, written here and nowhere else
//! (`config.rs` turns them into checked `Settings`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::parse_duration;
use crate::domain::subject::SYSTEM_USERNAME;

/// The embedded default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tokend.db?mode=rwc";

/// The first part of every secret unless a deployment configures its own.
pub const DEFAULT_TOKEN_PREFIX: &str = "tokend";

/// `--trusted-proxies`' default: IPv4 and IPv6 loopback (the sidecar in the
/// same pod).
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.0/8,::1/128";

/// `--ext-authz-allowed-peers`' default: loopback only (Envoy as a sidecar
/// or on the same host).
pub const DEFAULT_EXT_AUTHZ_ALLOWED_PEERS: &str = "127.0.0.0/8,::1/128";

/// tokend: creates, stores (as SHA-256 digests) and answers for API tokens over gRPC.
#[derive(Debug, Parser)]
#[command(name = "tokend", version, about, propagate_version = true)]
pub struct Cli {
    /// Settings every command shares.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every command shares.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Database URL: sqlite://PATH?mode=rwc (embedded) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "TOKEND_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Most database connections (PostgreSQL pool, or SQLite readers).
    #[arg(
        long,
        env = "TOKEND_DATABASE_MAX_CONNECTIONS",
        default_value_t = 10,
        global = true
    )]
    pub database_max_connections: u32,

    /// How long a call may wait on the database (connecting, locks, queries)
    /// before it fails with UNAVAILABLE.
    #[arg(long, env = "TOKEND_DATABASE_TIMEOUT", default_value = "3s", value_parser = parse_duration, global = true)]
    pub database_timeout: Duration,

    /// Connect to a PostgreSQL host that is not loopback even without
    /// sslmode=verify-full or verify-ca (cleartext, or TLS with an unverified
    /// certificate). Off: such a URL is refused at start-up.
    #[arg(
        long,
        env = "TOKEND_DATABASE_ALLOW_INSECURE_TRANSPORT",
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new(),
        global = true
    )]
    pub database_allow_insecure_transport: bool,

    /// The fixed first part of every token secret of this deployment.
    #[arg(long, env = "TOKEND_TOKEN_PREFIX", default_value = DEFAULT_TOKEN_PREFIX, global = true)]
    pub token_prefix: String,

    /// Log format on stderr.
    #[arg(long, env = "TOKEND_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (migrates the database first).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tokens straight in the database (bootstrap).
    Token {
        /// Token command.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Write the FileDescriptorSet (with imports) to stdout, for the sidecar.
    Descriptor,
}

/// `tokend serve` settings.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// gRPC listen address.
    #[arg(long, env = "TOKEND_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// How often buffered token usage (lastUsedAt) is written to the database.
    #[arg(long, env = "TOKEND_USAGE_FLUSH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub usage_flush_interval: Duration,

    /// A token's use from the same address is written again only this long
    /// after the last one (lastUsedAt's precision); 0s writes every use at
    /// the next flush. A use from a new address is always written.
    #[arg(long, env = "TOKEND_USAGE_PRECISION", default_value = "60s", value_parser = parse_duration)]
    pub usage_precision: Duration,

    /// How often the health service pings the database.
    #[arg(long, env = "TOKEND_HEALTH_CHECK_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub health_check_interval: Duration,

    /// Entries in the credential cache (secret digest -> token); 0 turns it off.
    #[arg(long, env = "TOKEND_AUTH_CACHE_CAPACITY", default_value_t = 100_000)]
    pub auth_cache_capacity: u64,

    /// How long a found token stays cached (at most 1h). A safety net: the
    /// change feed drops a token's entries as soon as any replica or the
    /// CLI commits a change to it.
    #[arg(long, env = "TOKEND_AUTH_CACHE_TTL", default_value = "5m", value_parser = parse_duration)]
    pub auth_cache_ttl: Duration,

    /// How often a replica on SQLite reads the change feed: the bound on how
    /// late a change made through another process on the same file is seen
    /// (5ms to 1s). PostgreSQL replicas are notified instead.
    #[arg(long, env = "TOKEND_CHANGE_POLL_INTERVAL", default_value = "25ms", value_parser = parse_duration)]
    pub change_poll_interval: Duration,

    /// How long "no such secret" stays cached (at most 1s).
    #[arg(long, env = "TOKEND_AUTH_CACHE_NEGATIVE_TTL", default_value = "1s", value_parser = parse_duration)]
    pub auth_cache_negative_ttl: Duration,

    /// Serve Prometheus metrics (text, GET /metrics) on this address; off unless set.
    #[arg(long, env = "TOKEND_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Largest request message, in bytes (larger ones: OUT_OF_RANGE).
    #[arg(long, env = "TOKEND_MAX_MESSAGE_SIZE", default_value_t = 64 * 1024)]
    pub max_message_size: usize,

    /// Deadline of calls that bring none; a shorter grpc-timeout wins.
    #[arg(long, env = "TOKEND_REQUEST_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Calls running at once (health checks excepted); more are refused
    /// at once with UNAVAILABLE rather than queued.
    #[arg(long, env = "TOKEND_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,

    /// Calls without a well-formed credential (no authorization header, or
    /// not a secret of this deployment) running at once, in a budget of
    /// their own: they never take --max-in-flight slots.
    #[arg(
        long,
        env = "TOKEND_MAX_UNAUTHENTICATED_IN_FLIGHT",
        default_value_t = 32
    )]
    pub max_unauthenticated_in_flight: usize,

    /// Of --max-in-flight, the calls one client address may hold at once
    /// (IPv6 grouped by --auth-failure-ipv6-prefix); more get
    /// RESOURCE_EXHAUSTED. 0: no per-client cap.
    #[arg(long, env = "TOKEND_MAX_IN_FLIGHT_PER_CLIENT", default_value_t = 64)]
    pub max_in_flight_per_client: usize,

    /// Longest wait between a call's headers and the end of its request
    /// body; then DEADLINE_EXCEEDED and its slot is freed.
    #[arg(long, env = "TOKEND_REQUEST_BODY_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub request_body_timeout: Duration,

    /// HTTP/2 streams per connection.
    #[arg(long, env = "TOKEND_MAX_CONCURRENT_STREAMS", default_value_t = 128)]
    pub max_concurrent_streams: u32,

    /// Largest request header block, in bytes.
    #[arg(long, env = "TOKEND_MAX_HEADER_LIST_SIZE", default_value_t = 16 * 1024)]
    pub max_header_list_size: u32,

    /// HTTP/2 keepalive ping interval.
    #[arg(long, env = "TOKEND_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub keepalive_interval: Duration,

    /// How long a keepalive ping may go unanswered before the connection is closed.
    #[arg(long, env = "TOKEND_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,

    /// Failed authentications per client address per window before that
    /// address's failures get RESOURCE_EXHAUSTED; 0 turns throttling off.
    #[arg(long, env = "TOKEND_AUTH_FAILURE_THRESHOLD", default_value_t = 20)]
    pub auth_failure_threshold: u32,

    /// The window failed authentications are counted in.
    #[arg(long, env = "TOKEND_AUTH_FAILURE_WINDOW", default_value = "1m", value_parser = parse_duration)]
    pub auth_failure_window: Duration,

    /// IPv6 clients are throttled together by this many leading bits of
    /// their address (64: one host's share of a network); IPv4 by address.
    #[arg(long, env = "TOKEND_AUTH_FAILURE_IPV6_PREFIX", default_value_t = 64)]
    pub auth_failure_ipv6_prefix: u8,

    /// Comma-separated CIDRs of the proxies whose last x-forwarded-for hop
    /// names the client (throttling, audit, lastUsedIpAddress); any other
    /// peer is the client itself. Empty: trust no proxy.
    #[arg(long, env = "TOKEND_TRUSTED_PROXIES", default_value = DEFAULT_TRUSTED_PROXIES)]
    pub trusted_proxies: String,

    /// How long audit rows are kept before a background task deletes them
    /// (in batches); 0 keeps them forever.
    #[arg(long, env = "TOKEND_AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    pub audit_retention: Duration,

    /// PEM certificate chain: serve gRPC over TLS (needs --tls-key).
    #[arg(long, env = "TOKEND_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "TOKEND_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle: require client certificates signed by it (mutual TLS).
    #[arg(long, env = "TOKEND_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Comma-separated CIDRs of the peers that may call Envoy's ext_authz
    /// Check (`envoy.service.auth.v3.Authorization`); others get
    /// PERMISSION_DENIED without a lookup. Check carries no caller token, so
    /// an open Check would test stolen secrets for anyone. Clients with a
    /// certificate of --tls-client-ca may call it too.
    #[arg(long, env = "TOKEND_EXT_AUTHZ_ALLOWED_PEERS", default_value = DEFAULT_EXT_AUTHZ_ALLOWED_PEERS)]
    pub ext_authz_allowed_peers: String,

    /// Let any peer call ext_authz Check (for a gateway reached over a
    /// network that only it can use, e.g. behind a NetworkPolicy).
    #[arg(
        long,
        env = "TOKEND_EXT_AUTHZ_ALLOW_REMOTE",
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub ext_authz_allow_remote: bool,

    /// Keep the `authorization` header on requests ext_authz allows (for
    /// upstreams that read the secret themselves); by default it is removed.
    #[arg(
        long,
        env = "TOKEND_EXT_AUTHZ_KEEP_AUTHORIZATION",
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub ext_authz_keep_authorization: bool,

    /// On SIGTERM, how long in-flight calls may run before they are abandoned.
    #[arg(long, env = "TOKEND_SHUTDOWN_GRACE_PERIOD", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace_period: Duration,
}

/// `tokend token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints the secret alone on the last line of stdout.
    Create(TokenCreateArgs),
}

/// `tokend token create` arguments: the Create body, as flags.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Organization the token belongs to.
    #[arg(long)]
    pub org: String,
    /// Token name.
    #[arg(long)]
    pub name: String,
    /// Token type: ORGANIZATION, WORKSPACE or DEPLOYMENT.
    #[arg(long = "type")]
    pub token_type: String,
    /// Role on the token's entity, e.g. ORGANIZATION_OWNER.
    #[arg(long)]
    pub role: String,
    /// Workspace or deployment id (required unless --type ORGANIZATION).
    #[arg(long, default_value = "")]
    pub entity_id: String,
    /// Expiry period in days (1 to 3650); never expires if absent.
    #[arg(long)]
    pub expiry_days: Option<i32>,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Kind: STANDARD or DIRECT_ACCESS.
    #[arg(long, default_value = "STANDARD")]
    pub kind: String,
    /// Username recorded as the token's creator.
    #[arg(long, default_value = SYSTEM_USERNAME)]
    pub created_by: String,
}
