//! Schema migrations, shared by SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_audit;
mod m20261123_000003_counts;
mod m20261124_000004_type_sort_indexes;
mod m20261202_000005_secret_expiry_ms;
mod m20261203_000006_audit_occurred_index;
mod m20261203_000007_token_changes;
mod m20261204_000008_last_rotated_at;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_audit::Migration),
            Box::new(m20261123_000003_counts::Migration),
            Box::new(m20261124_000004_type_sort_indexes::Migration),
            Box::new(m20261202_000005_secret_expiry_ms::Migration),
            Box::new(m20261203_000006_audit_occurred_index::Migration),
            Box::new(m20261203_000007_token_changes::Migration),
            Box::new(m20261204_000008_last_rotated_at::Migration),
        ]
    }
}

/// Rebuilds `api_token_counts` from `api_tokens` (the migration's backfill;
/// also for tools that bulk-load tokens behind the store's back).
pub const RECOUNT_SQL: &str = "DELETE FROM api_token_counts; \
     INSERT INTO api_token_counts (organization_id, token_type, entity_id, kind, tokens) \
     SELECT organization_id, token_type, entity_id, kind, COUNT(*) FROM api_tokens \
     GROUP BY organization_id, token_type, entity_id, kind";

/// A text column. On PostgreSQL it uses the "C" collation, so text sorts
/// bytewise exactly as SQLite's default BINARY collation does and List
/// returns the same order on both databases.
pub(crate) fn text<T: IntoIden>(name: T, backend: sea_orm::DbBackend) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.text().not_null();
    if backend == sea_orm::DbBackend::Postgres {
        col.extra("COLLATE \"C\"");
    }
    col
}
