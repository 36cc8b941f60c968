//! The change feed's store side (issue 16): every committed write that
//! changes what authentication or Lookup answers for a token (create,
//! update, roles, rotate, delete; through the API or `tokend token create`)
//! announces the token's id in its own transaction, so that every replica
//! can drop what it cached about that token.
//!
//! - **SQLite** (replicas and the CLI share one file): a row in
//!   `token_changes`, read by sequence ([`Store::changes_after`]). SQLite
//!   commits one writer at a time, so sequence order is commit order and a
//!   reader never finds a row appear behind one it has read; `seq` is
//!   AUTOINCREMENT and a rolled-back write gives its number back, so the
//!   committed rows are contiguous and a gap means rows were pruned before
//!   this reader saw them ([`Changes::Lost`]).
//! - **PostgreSQL**: `pg_notify` on [`CHANNEL`] with the token id, in the
//!   same transaction: delivered when it commits, in commit order, never for
//!   a rollback, to every connection that LISTENs ([`ChangeListener`]).
//!   PostgreSQL does not write the table: its sequences hand out numbers at
//!   insert, not at commit, so a reader going by sequence could pass a
//!   number whose transaction commits later and never see it.

use std::time::Duration;

use sea_orm::sqlx::postgres::{PgListener, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};

use super::{DatabaseKind, Store, StoreError};
use crate::domain::ids::TokenId;

/// The PostgreSQL notification channel of the feed.
pub const CHANNEL: &str = "tokend_token_changes";

/// Most rows [`Store::changes_after`] returns at once.
const BATCH: i64 = 1000;

/// What a reader of the SQLite feed finds after its cursor.
#[derive(Debug, PartialEq, Eq)]
pub enum Changes {
    /// The tokens changed after the cursor, in commit order (ids that are
    /// not well formed are skipped: they cannot be cached), and the new
    /// cursor.
    Tokens { ids: Vec<TokenId>, cursor: i64 },
    /// Rows after the cursor were pruned before this reader saw them: it
    /// cannot know what changed, and continues from `cursor`.
    Lost { cursor: i64 },
}

/// Announces, inside `txn`, that token `id` changed (see the module doc).
pub(crate) async fn announce(
    txn: &DatabaseTransaction,
    kind: DatabaseKind,
    id: &TokenId,
    at_ms: i64,
) -> Result<(), StoreError> {
    let statement = match kind {
        DatabaseKind::Sqlite => Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO token_changes (token_id, changed_at_ms) VALUES (?, ?)",
            [id.as_str().into(), at_ms.into()],
        ),
        DatabaseKind::Postgres => notify(id.as_str()),
    };
    txn.execute_raw(statement).await?;
    Ok(())
}

/// `payload` on [`CHANNEL`], sent when the transaction it runs in commits.
fn notify(payload: &str) -> Statement {
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), payload.into()],
    )
}

impl Store {
    /// The feed's current position (SQLite): the last sequence number
    /// handed out, pruned or not. A reader starts here.
    pub async fn change_cursor(&self) -> Result<i64, StoreError> {
        let row = self
            .read
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'token_changes'), 0) AS seq",
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "seq"))
            .transpose()?
            .unwrap_or(0))
    }

    /// The changes committed after `cursor` (SQLite), at most a batch.
    pub async fn changes_after(&self, cursor: i64) -> Result<Changes, StoreError> {
        // One index range read of the primary key; empty almost always.
        let rows = self
            .read
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT seq, token_id FROM token_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                [cursor.into(), BATCH.into()],
            ))
            .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut last = cursor;
        for row in rows {
            let seq: i64 = row.try_get("", "seq")?;
            if seq != last + 1 {
                // Rows between were pruned unseen.
                return Ok(Changes::Lost {
                    cursor: self.change_cursor().await?,
                });
            }
            last = seq;
            let id: String = row.try_get("", "token_id")?;
            ids.extend(TokenId::parse_generated(&id));
        }
        Ok(Changes::Tokens { ids, cursor: last })
    }

    /// Deletes feed rows older than `cutoff_ms` (SQLite), a batch at a time;
    /// the number deleted. The last row is always kept, so the sequence
    /// survives a restart of every replica even without AUTOINCREMENT's
    /// bookkeeping.
    pub async fn prune_changes(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let result = self
            .write
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "DELETE FROM token_changes WHERE seq IN (SELECT seq FROM token_changes \
                 WHERE changed_at_ms < ? AND seq < (SELECT MAX(seq) FROM token_changes) \
                 ORDER BY seq LIMIT ?)",
                [cutoff_ms.into(), BATCH.into()],
            ))
            .await?;
        Ok(result.rows_affected())
    }

    /// Sends `payload` on the feed's channel (PostgreSQL) from a pooled
    /// connection: a listener that receives it has received every change
    /// committed before it (notifications arrive in commit order), which is
    /// how a reader proves its connection is still delivering.
    pub async fn heartbeat(&self, payload: &str) -> Result<(), StoreError> {
        self.read.execute_raw(notify(payload)).await?;
        Ok(())
    }

    /// A dedicated connection LISTENing on the feed (PostgreSQL), opened
    /// with the store's own connection options (TLS included), outside the
    /// pool so that it takes no slot from calls. `None` on SQLite.
    pub async fn listen_for_changes(
        &self,
        timeout: Duration,
    ) -> Result<Option<ChangeListener>, StoreError> {
        if self.kind != DatabaseKind::Postgres {
            return Ok(None);
        }
        let options = self.read.get_postgres_connection_pool().connect_options();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(timeout)
            .connect_lazy_with((*options).clone());
        let listen = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection is reported, not silently re-established:
            // notifications sent meanwhile are gone, and the reader must
            // know.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        let listener = tokio::time::timeout(timeout, listen)
            .await
            .map_err(|_| StoreError::Unavailable("LISTEN did not complete in time".into()))?
            .map_err(|e| StoreError::Unavailable(format!("LISTEN {CHANNEL}: {e}")))?;
        Ok(Some(ChangeListener { listener }))
    }
}

/// A PostgreSQL connection listening on the feed.
#[derive(Debug)]
pub struct ChangeListener {
    listener: PgListener,
}

impl ChangeListener {
    /// The next notification's payload (a token id, or a heartbeat, see
    /// [`Store::heartbeat`]); an error once the connection is lost, after
    /// which notifications may have been missed and this listener is done.
    pub async fn next(&mut self) -> Result<String, StoreError> {
        match self.listener.try_recv().await {
            Ok(Some(notification)) => Ok(notification.payload().to_owned()),
            Ok(None) => Err(StoreError::Unavailable(
                "the listening connection was lost".into(),
            )),
            Err(e) => Err(StoreError::Unavailable(format!(
                "the listening connection failed: {e}"
            ))),
        }
    }
}
