//! The only code that knows sea-orm: connections, migrations and queries.
//!
//! Each query function has one job, takes domain types and returns domain
//! types. SQLite gets one writer connection and a separate read pool (SQLite
//! has one writer; a single writer connection means no two transactions ever
//! race to upgrade their locks); PostgreSQL uses one pool for both.

mod audit;
mod changes;
mod convert;
pub mod entity;
mod error;
mod lifecycle;
mod list;
pub mod migration;
mod tokens;
mod transport;
mod usage;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use audit::{FailedToken, FailureOrigin, FailureRecord, PRUNE_BATCH};
pub use changes::{CHANNEL as CHANGE_CHANNEL, ChangeListener, Changes};
pub use error::StoreError;
pub use lifecycle::{Mutated, RoleGuard, Rotation};
pub use list::{ListStatements, list_statements};
pub use tokens::{CreateRecord, DigestMatch, TokenHead, read_statements};
pub use transport::{PgTransport, check_postgres_transport};
pub use usage::UsageRecord;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl DatabaseKind {
    /// Infers the kind from a database URL, without logging or keeping it.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    /// A name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest pool: PostgreSQL connections, or SQLite readers.
    pub max_connections: u32,
    /// How long a call waits for a connection (or to connect) before failing
    /// with UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a lock held by another process.
    pub sqlite_busy_timeout: Duration,
    /// Connect to a PostgreSQL host that is not loopback even when its
    /// certificate is not verified (`sslmode` other than `verify-full` or
    /// `verify-ca`); see [`check_postgres_transport`].
    pub allow_insecure_transport: bool,
}

/// One pool's occupancy.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// `postgres`, or SQLite's `write` / `read`.
    pub name: &'static str,
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The pool's bound.
    pub max: u32,
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    read: DatabaseConnection,
    write: DatabaseConnection,
    kind: DatabaseKind,
    sqlite_file: Option<SqliteFile>,
    /// How long SQLite waits for a lock (also how long [`Store::migrate`]
    /// retries a refused one).
    busy_timeout: Duration,
    /// Statements run through `read` and `write`, for metrics.
    statements: Arc<AtomicU64>,
}

/// The SQLite file the store opened, to notice when it is moved or replaced
/// under a running server (its connections would keep writing to a file
/// nobody reads).
#[derive(Debug, Clone)]
struct SqliteFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl SqliteFile {
    fn identity_of(path: &PathBuf) -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
}

/// Pooled connections are handed out only while `file` is still the file
/// the store opened: a connection opened before the file was moved, deleted
/// or replaced would keep reading and writing the old one, acknowledging
/// writes nobody will read. Such a connection is closed instead, and a new
/// one fails to open (UNAVAILABLE) until the file is back.
fn same_file_only(opts: &mut ConnectOptions, file: &Option<SqliteFile>) {
    let Some(file) = file.clone() else {
        return;
    };
    opts.map_sqlx_sqlite_pool_opts(move |pool| {
        let file = file.clone();
        pool.before_acquire(move |_, _| {
            let same = SqliteFile::identity_of(&file.path) == file.identity;
            Box::pin(async move { Ok(same) })
        })
    });
}

impl Store {
    /// Connects to `url` (`sqlite://...` or `postgres://...`).
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let mut store = Self::open(url, options).await?;
        let statements = store.statements.clone();
        for conn in [&mut store.read, &mut store.write] {
            let statements = statements.clone();
            conn.set_metric_callback(move |_| {
                statements.fetch_add(1, Ordering::Relaxed);
            });
        }
        Ok(store)
    }

    /// SQL statements run so far through the store's pools, inside
    /// transactions or not.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        match DatabaseKind::of_url(url) {
            Some(DatabaseKind::Sqlite) => {
                // Opening switches the file to WAL, which needs the lock a
                // replica starting at the same moment may hold: retried
                // like a refused lock in `migrate`.
                let deadline = tokio::time::Instant::now() + options.sqlite_busy_timeout;
                loop {
                    match Self::connect_sqlite(url, options).await {
                        Err(StoreError::Unavailable(message))
                            if message.contains("is locked")
                                && tokio::time::Instant::now() < deadline =>
                        {
                            tracing::debug!("the SQLite file is locked while opening; retrying");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        result => break result,
                    }
                }
            }
            Some(DatabaseKind::Postgres) => Self::connect_postgres(url, options).await,
            None => Err(StoreError::Config(
                "database URL must start with sqlite:, postgres:// or postgresql://".into(),
            )),
        }
    }

    async fn connect_postgres(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let transport = check_postgres_transport(url, options.allow_insecure_transport)
            .map_err(StoreError::Config)?;
        if let PgTransport::Unverified { ssl_mode } = transport {
            tracing::warn!(
                ssl_mode,
                "connecting to a PostgreSQL host that is not loopback without verifying its \
                 certificate, as --database-allow-insecure-transport allows"
            );
        }
        let mut opts = ConnectOptions::new(url);
        opts.max_connections(options.max_connections)
            .min_connections(1)
            .connect_timeout(options.acquire_timeout)
            .acquire_timeout(options.acquire_timeout)
            .sqlx_logging(false)
            .set_application_name("tokend");
        let pool = Database::connect(opts).await?;
        Ok(Self {
            read: pool.clone(),
            write: pool,
            kind: DatabaseKind::Postgres,
            sqlite_file: None,
            busy_timeout: options.sqlite_busy_timeout,
            statements: Arc::default(),
        })
    }

    async fn connect_sqlite(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let parsed: SqliteConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            // Create the file (if the URL allows it) once, now. Pool
            // connections opened later never create it: if the file is moved
            // or deleted under a running server they fail (UNAVAILABLE)
            // rather than silently start an empty database.
            let mut first = ConnectOptions::new(url);
            first.max_connections(1).sqlx_logging(false);
            Database::connect(first).await?.close().await?;
        }
        let file = (!in_memory).then(|| {
            let path = parsed.get_filename().to_path_buf();
            let identity = SqliteFile::identity_of(&path);
            SqliteFile { path, identity }
        });
        let busy = options.sqlite_busy_timeout;
        let tune = move |o: SqliteConnectOptions| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
                .create_if_missing(in_memory)
        };
        let mut write_opts = ConnectOptions::new(url);
        write_opts
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(tune);
        same_file_only(&mut write_opts, &file);
        let write = Database::connect(write_opts).await?;
        if in_memory {
            return Ok(Self {
                read: write.clone(),
                write,
                kind: DatabaseKind::Sqlite,
                sqlite_file: None,
                busy_timeout: busy,
                statements: Arc::default(),
            });
        }
        let mut read_opts = ConnectOptions::new(url);
        read_opts
            .max_connections(options.max_connections.max(1))
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |o| tune(o).pragma("query_only", "ON"));
        same_file_only(&mut read_opts, &file);
        let read = Database::connect(read_opts).await?;
        Ok(Self {
            read,
            write,
            kind: DatabaseKind::Sqlite,
            sqlite_file: file,
            busy_timeout: busy,
            statements: Arc::default(),
        })
    }

    /// Which database this store runs on.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Applies pending migrations in one transaction. On PostgreSQL a
    /// transaction-scoped advisory lock makes replicas that start together
    /// apply them once, one after the other. On SQLite the transaction
    /// starts as a reader, and a reader that must become the writer while
    /// another replica writes is refused at once (SQLITE_BUSY, no busy
    /// wait, since waiting could deadlock): it is retried until the busy
    /// timeout has passed, and then finds the migrations applied.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "migrate", system = self.kind.as_str()))]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let _timer = DbTimer::start();
        let deadline = tokio::time::Instant::now() + self.busy_timeout;
        loop {
            match self.migrate_once().await {
                Err(err)
                    if self.kind == DatabaseKind::Sqlite
                        && (error::is_busy(&err) || err.to_string().contains("is locked"))
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!("another process is migrating the SQLite database; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                result => return result.map_err(StoreError::from),
            }
        }
    }

    async fn migrate_once(&self) -> Result<(), sea_orm::DbErr> {
        let txn = self.write.begin().await?;
        if self.kind == DatabaseKind::Postgres {
            // Arbitrary constant: "tokend" in ASCII.
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(127970394892644)")
                .await?;
        }
        migration::Migrator::up(&txn, None).await?;
        txn.commit().await
    }

    /// Answers whether the database serves queries right now: a trivial
    /// query, and for SQLite, that the file is still the one opened.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "ping", system = self.kind.as_str()))]
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _timer = DbTimer::start();
        self.read.execute_unprepared("SELECT 1").await?;
        if let Some(file) = &self.sqlite_file
            && SqliteFile::identity_of(&file.path) != file.identity
        {
            return Err(StoreError::Unavailable(
                "the SQLite database file was moved, replaced or made inaccessible".into(),
            ));
        }
        Ok(())
    }

    /// Size, idle count and bound of each connection pool (for metrics).
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let sqlite = |name, conn: &DatabaseConnection| {
            let pool = conn.get_sqlite_connection_pool();
            PoolStats {
                name,
                size: pool.size(),
                idle: pool.num_idle() as u32,
                max: pool.options().get_max_connections(),
            }
        };
        match self.kind {
            DatabaseKind::Postgres => {
                let pool = self.write.get_postgres_connection_pool();
                vec![PoolStats {
                    name: "postgres",
                    size: pool.size(),
                    idle: pool.num_idle() as u32,
                    max: pool.options().get_max_connections(),
                }]
            }
            DatabaseKind::Sqlite if self.sqlite_file.is_some() => {
                vec![sqlite("write", &self.write), sqlite("read", &self.read)]
            }
            DatabaseKind::Sqlite => vec![sqlite("write", &self.write)],
        }
    }

    /// Closes every connection; pending statements finish first.
    pub async fn close(self) {
        let Self { read, write, .. } = self;
        // Errors while closing leave nothing to recover; the process is ending.
        let _ = write.close().await;
        let _ = read.close().await;
    }

    fn backend(&self) -> DbBackend {
        self.write.get_database_backend()
    }
}

/// Logs at debug level, inside the operation's `db` span, how long a
/// database operation took; also when the caller gave up on it first (a
/// deadline), since the span is entered when its future is dropped.
struct DbTimer(std::time::Instant);

impl DbTimer {
    fn start() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Drop for DbTimer {
    fn drop(&mut self) {
        tracing::debug!(
            elapsed_us = self.0.elapsed().as_micros() as u64,
            "database call finished"
        );
    }
}
