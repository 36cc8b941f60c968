//! Token counts per (organization, type, entity, kind), kept in step with
//! `api_tokens` by Create and Delete, so List's `totalCount` for filters
//! that involve no role is a sum over a few rows instead of a count over up
//! to every token of the organization.

use sea_orm_migration::prelude::*;

use super::text;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokenCounts {
    Table,
    OrganizationId,
    TokenType,
    EntityId,
    Kind,
    Tokens,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(ApiTokenCounts::Table)
                    .col(text(ApiTokenCounts::OrganizationId, db))
                    .col(text(ApiTokenCounts::TokenType, db))
                    .col(text(ApiTokenCounts::EntityId, db))
                    .col(text(ApiTokenCounts::Kind, db))
                    .col(
                        ColumnDef::new(ApiTokenCounts::Tokens)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ApiTokenCounts::OrganizationId)
                            .col(ApiTokenCounts::TokenType)
                            .col(ApiTokenCounts::EntityId)
                            .col(ApiTokenCounts::Kind),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(super::RECOUNT_SQL)
            .await?;
        Ok(())
    }
}
