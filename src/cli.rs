//! Command-line definitions: every setting is a flag with an environment
//! variable fallback and a default.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::parse_duration;
use crate::domain::secret::DEFAULT_TOKEN_PREFIX;
use crate::domain::subject::SYSTEM_USERNAME;

/// The embedded default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tokend.db?mode=rwc";

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

    /// How long a call waits for a database connection before UNAVAILABLE.
    #[arg(long, env = "TOKEND_DATABASE_TIMEOUT", default_value = "3s", value_parser = parse_duration, global = true)]
    pub database_timeout: Duration,

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
    Serve(ServeArgs),
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

    /// How often the health service pings the database.
    #[arg(long, env = "TOKEND_HEALTH_CHECK_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub health_check_interval: Duration,

    /// Entries in the credential cache (secret digest -> token); 0 turns it off.
    #[arg(long, env = "TOKEND_AUTH_CACHE_CAPACITY", default_value_t = 100_000)]
    pub auth_cache_capacity: u64,

    /// How long a found token stays cached: the bound on how late another
    /// replica's rotate, delete or disable is noticed here (at most 30s).
    #[arg(long, env = "TOKEND_AUTH_CACHE_TTL", default_value = "2s", value_parser = parse_duration)]
    pub auth_cache_ttl: Duration,

    /// How long "no such secret" stays cached (at most 1s).
    #[arg(long, env = "TOKEND_AUTH_CACHE_NEGATIVE_TTL", default_value = "1s", value_parser = parse_duration)]
    pub auth_cache_negative_ttl: Duration,
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
