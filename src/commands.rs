//! What each command does.

use std::io::Write;
use std::time::Duration;

use crate::service::authenticate::TrustedProxies;
use crate::service::cache::CacheSettings;

use crate::cli::{Cli, Command, GlobalArgs, ServeArgs, TokenCommand, TokenCreateArgs};
use crate::config::{DatabaseUrl, Limits, Settings, TlsFiles};
use crate::domain::FieldViolation;
use crate::domain::ids::OrganizationId;
use crate::domain::net::parse_cidr_list;
use crate::domain::secret::TokenPrefix;
use crate::domain::subject::Subject;
use crate::domain::time::now_seconds;
use crate::domain::token::{CreateTokenInput, NewToken, TokenKind, TokenType};
use crate::server::{Application, FILE_DESCRIPTOR_SET, StartupError};
use crate::service::mint::{IssueError, issue};
use crate::service::throttle::ThrottleSettings;
use crate::store::{Store, StoreError, StoreOptions};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A flag or environment value is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Token fields break the contract's rules.
    #[error("invalid token: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidToken(Vec<FieldViolation>),
    /// The server failed.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing to stdout failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

impl CommandError {
    /// The process exit code: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::InvalidToken(_) => 2,
            // An unusable database URL, refused before connecting.
            Self::Store(StoreError::Config(_))
            | Self::Startup(StartupError::Store(StoreError::Config(_))) => 2,
            _ => 1,
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CommandError> {
    match cli.command {
        Command::Serve(args) => serve(&cli.global, &args).await,
        Command::Migrate => {
            connect(&cli.global).await?.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create(args),
        } => create_token(&cli.global, &args).await,
        Command::Descriptor => {
            let mut out = std::io::stdout().lock();
            out.write_all(FILE_DESCRIPTOR_SET)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// Settings for `serve`, validated.
pub fn settings(global: &GlobalArgs, args: &ServeArgs) -> Result<Settings, CommandError> {
    let mut settings = Settings::with_database(database_url(global)?);
    settings.listen = args.listen;
    settings.store = store_options(global);
    settings.token_prefix = prefix(global)?;
    settings.usage_flush_interval = args.usage_flush_interval;
    settings.health_check_interval = args.health_check_interval;
    if args.auth_cache_ttl > Duration::from_secs(30) {
        return Err(CommandError::Config(
            "--auth-cache-ttl must be at most 30s".into(),
        ));
    }
    if args.auth_cache_negative_ttl > Duration::from_secs(1) {
        return Err(CommandError::Config(
            "--auth-cache-negative-ttl must be at most 1s".into(),
        ));
    }
    settings.auth_cache = CacheSettings {
        capacity: args.auth_cache_capacity,
        ttl: args.auth_cache_ttl,
        negative_ttl: args.auth_cache_negative_ttl,
    };
    settings.metrics_listen = args.metrics_listen;
    if args.max_message_size < 1024 || args.max_in_flight == 0 {
        return Err(CommandError::Config(
            "--max-message-size must be at least 1024 and --max-in-flight at least 1".into(),
        ));
    }
    if args.max_unauthenticated_in_flight == 0 || args.request_body_timeout.is_zero() {
        return Err(CommandError::Config(
            "--max-unauthenticated-in-flight must be at least 1 and --request-body-timeout above 0"
                .into(),
        ));
    }
    settings.limits = Limits {
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
    };
    if !(32..=128).contains(&args.auth_failure_ipv6_prefix) {
        return Err(CommandError::Config(
            "--auth-failure-ipv6-prefix must be between 32 and 128".into(),
        ));
    }
    settings.throttle = ThrottleSettings {
        threshold: args.auth_failure_threshold,
        window: args.auth_failure_window,
        ipv6_prefix: args.auth_failure_ipv6_prefix,
    };
    settings.trusted_proxies = parse_cidr_list(&args.trusted_proxies)
        .map(TrustedProxies::new)
        .map_err(|e| CommandError::Config(format!("--trusted-proxies: {e}")))?;
    settings.audit_retention = (!args.audit_retention.is_zero()).then_some(args.audit_retention);
    settings.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        }),
        _ => None,
    };
    settings.shutdown_grace_period = args.shutdown_grace_period;
    Ok(settings)
}

async fn serve(global: &GlobalArgs, args: &ServeArgs) -> Result<(), CommandError> {
    let app = Application::build(settings(global, args)?).await?;
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn database_url(global: &GlobalArgs) -> Result<DatabaseUrl, CommandError> {
    DatabaseUrl::parse(&global.database_url).map_err(CommandError::Config)
}

fn prefix(global: &GlobalArgs) -> Result<TokenPrefix, CommandError> {
    TokenPrefix::parse(&global.token_prefix).map_err(CommandError::Config)
}

fn store_options(global: &GlobalArgs) -> StoreOptions {
    StoreOptions {
        max_connections: global.database_max_connections,
        acquire_timeout: global.database_timeout,
        allow_insecure_transport: global.database_allow_insecure_transport,
        ..StoreOptions::default()
    }
}

async fn connect(global: &GlobalArgs) -> Result<Store, CommandError> {
    let url = database_url(global)?;
    Ok(Store::connect(url.expose(), &store_options(global)).await?)
}

/// `tokend token create`: migrates, writes the token, prints a summary and
/// then the secret alone on the last line of stdout.
async fn create_token(global: &GlobalArgs, args: &TokenCreateArgs) -> Result<(), CommandError> {
    let prefix = prefix(global)?;
    let org =
        OrganizationId::parse("org", &args.org).map_err(|v| CommandError::InvalidToken(vec![v]))?;
    let mut violations = Vec::new();
    let token_type = TokenType::from_name(&args.token_type);
    if token_type.is_none() {
        violations.push(FieldViolation::new(
            "type",
            "must be ORGANIZATION, WORKSPACE or DEPLOYMENT",
        ));
    }
    let kind = TokenKind::from_name(&args.kind);
    if kind.is_none() {
        violations.push(FieldViolation::new(
            "kind",
            "must be STANDARD or DIRECT_ACCESS",
        ));
    }
    let creator = Subject::user(&args.created_by, "").map_err(|v| {
        CommandError::InvalidToken(vec![FieldViolation::new("created-by", v.description)])
    })?;
    let now = now_seconds();
    let input = CreateTokenInput {
        name: &args.name,
        description: &args.description,
        token_type,
        role: &args.role,
        entity_id: &args.entity_id,
        expiry_days: args.expiry_days,
        kind,
        start_at: None,
    };
    let new = match NewToken::parse(org, &input, now) {
        Ok(new) if violations.is_empty() => new,
        Ok(_) => return Err(CommandError::InvalidToken(violations)),
        Err(more) => {
            violations.extend(more);
            return Err(CommandError::InvalidToken(violations));
        }
    };
    let store = connect(global).await?;
    store.migrate().await?;
    let (created, secret) = issue(&store, &prefix, &new, &creator, None, now)
        .await
        .map_err(|err| match err {
            IssueError::Store(store) => CommandError::Store(store),
            IssueError::Random(e) => CommandError::Config(format!("OS random source: {e}")),
        })?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "created API token {} named {:?}: {} {} with role {}",
        created.id,
        created.name,
        created.token_type,
        created.entity_id,
        new.role.role()
    )?;
    writeln!(out, "{}", secret.expose())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn serve(args: &[&str]) -> Result<Settings, CommandError> {
        let cli = Cli::try_parse_from([&["tokend", "serve"], args].concat()).expect("flags parse");
        let Command::Serve(serve) = &cli.command else {
            unreachable!("serve was asked for")
        };
        settings(&cli.global, serve)
    }

    #[test]
    fn retention_proxies_and_ipv6_prefix() {
        let defaults = serve(&[]).unwrap();
        assert_eq!(
            defaults.audit_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(defaults.trusted_proxies, TrustedProxies::default());
        assert!(
            defaults
                .trusted_proxies
                .contains("127.0.0.6".parse().unwrap())
        );
        assert!(defaults.trusted_proxies.contains("::1".parse().unwrap()));
        assert!(
            !defaults
                .trusted_proxies
                .contains("10.0.0.1".parse().unwrap())
        );
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
            assert!(
                matches!(serve(&bad), Err(CommandError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stall_limits_carry_their_flags_and_refuse_zero() {
        let defaults = serve(&[]).expect("defaults").limits;
        let built_in = Limits::default();
        assert_eq!(
            defaults.max_unauthenticated_in_flight,
            built_in.max_unauthenticated_in_flight
        );
        assert_eq!(
            defaults.max_in_flight_per_client,
            built_in.max_in_flight_per_client
        );
        assert_eq!(defaults.request_body_timeout, built_in.request_body_timeout);
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
            ["--max-unauthenticated-in-flight", "0"],
            ["--request-body-timeout", "0s"],
        ] {
            assert!(
                matches!(serve(&bad), Err(CommandError::Config(_))),
                "{bad:?}"
            );
        }
    }
}
