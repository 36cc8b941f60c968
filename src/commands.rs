//! What each command does.

use std::io::Write;

use crate::cli::{Cli, Command, GlobalArgs, ServeArgs, TokenCommand, TokenCreateArgs};
use crate::config::{ConfigError, DatabaseUrl, Settings};
use crate::domain::FieldViolation;
use crate::domain::ids::OrganizationId;
use crate::domain::secret::TokenPrefix;
use crate::domain::subject::Subject;
use crate::domain::time::now_seconds;
use crate::domain::token::{CreateTokenInput, NewToken, TokenKind, TokenType};
use crate::server::{Application, FILE_DESCRIPTOR_SET, StartupError};
use crate::service::mint::{IssueError, issue};
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

impl From<ConfigError> for CommandError {
    fn from(err: ConfigError) -> Self {
        Self::Config(err.0)
    }
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

async fn serve(global: &GlobalArgs, args: &ServeArgs) -> Result<(), CommandError> {
    let settings = Settings::try_from((global, args))?;
    let app = Application::build(settings).await?;
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

async fn connect(global: &GlobalArgs) -> Result<Store, CommandError> {
    let url = DatabaseUrl::try_from(global)?;
    Ok(Store::connect(url.expose(), &StoreOptions::from_args(global)).await?)
}

/// `tokend token create`: migrates, writes the token, prints a summary and
/// then the secret alone on the last line of stdout.
async fn create_token(global: &GlobalArgs, args: &TokenCreateArgs) -> Result<(), CommandError> {
    let prefix = TokenPrefix::try_from(global)?;
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
