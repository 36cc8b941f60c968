//! Audit retention deletes the rows older than a cutoff, a batch at a time:
//! an index on `occurred_at` makes each batch an index range walk instead of
//! a scan of the whole trail, and makes a run that finds nothing to delete
//! cost one index probe.
//!
//! On PostgreSQL the index is built inside the migration's transaction (not
//! CONCURRENTLY), which blocks inserts into `audit_events` (and so the
//! mutations that write them) while it builds, once, for a time that grows
//! with the size of the trail.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    OccurredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_occurred_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OccurredAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }
}
