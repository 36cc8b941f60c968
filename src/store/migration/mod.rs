//! Schema migrations, shared by SQLite and PostgreSQL.

use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261123_000002_audit;

/// Every migration, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261123_000002_audit::Migration),
        ]
    }
}

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
