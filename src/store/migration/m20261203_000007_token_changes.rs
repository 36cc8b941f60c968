//! The change feed (issue 16): one row per committed write that changes
//! what authentication or Lookup answers for a token, written in the
//! write's own transaction. Replicas on a SQLite file read it by sequence
//! (SQLite commits one writer at a time, so sequence order is commit order
//! and a row never appears behind one already read); PostgreSQL replicas are
//! woken by `pg_notify` from the same transaction instead (see
//! `store/changes.rs` for why they do not read this table by sequence).
//!
//! `seq` is AUTOINCREMENT on SQLite, so a number is never reused after the
//! rows below it are pruned; a reader that finds the oldest row past the
//! one it expected knows it missed some and starts over.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TokenChanges {
    Table,
    Seq,
    TokenId,
    ChangedAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(TokenChanges::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(TokenChanges::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(super::text(TokenChanges::TokenId, db))
                    .col(
                        ColumnDef::new(TokenChanges::ChangedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_token_changes_changed_at_ms")
                    .table(TokenChanges::Table)
                    .col(TokenChanges::ChangedAtMs)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
