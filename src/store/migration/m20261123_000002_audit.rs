//! The audit trail, and at most one current secret per token.

use sea_orm_migration::prelude::*;

use super::text;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OrganizationId,
    TokenId,
    TokenType,
    TokenEntityId,
    Action,
    ActorId,
    ActorType,
    ActorName,
    Ip,
    OccurredAt,
    Detail,
    Count,
}

fn optional_text(name: AuditEvents, db: sea_orm::DbBackend) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.text().null();
    if db == sea_orm::DbBackend::Postgres {
        col.extra("COLLATE \"C\"");
    }
    col
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(optional_text(AuditEvents::OrganizationId, db))
                    .col(optional_text(AuditEvents::TokenId, db))
                    .col(optional_text(AuditEvents::TokenType, db))
                    .col(optional_text(AuditEvents::TokenEntityId, db))
                    .col(text(AuditEvents::Action, db))
                    .col(optional_text(AuditEvents::ActorId, db))
                    .col(optional_text(AuditEvents::ActorType, db))
                    .col(optional_text(AuditEvents::ActorName, db))
                    .col(optional_text(AuditEvents::Ip, db))
                    .col(
                        ColumnDef::new(AuditEvents::OccurredAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(AuditEvents::Detail, db))
                    .col(ColumnDef::new(AuditEvents::Count).integer().not_null())
                    .to_owned(),
            )
            .await?;
        // ListAuditEvents: one token's events, newest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_token")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrganizationId)
                    .col(AuditEvents::TokenId)
                    .col(AuditEvents::Id)
                    .to_owned(),
            )
            .await?;
        // A token has exactly one current secret (expires_at IS NULL); the
        // database refuses a second one whatever the application does.
        // Partial indexes have the same syntax on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_api_token_secrets_current \
                 ON api_token_secrets (token_id) WHERE expires_at IS NULL",
            )
            .await?;
        Ok(())
    }
}
