//! A rotated-out secret's end of grace in milliseconds (`expires_at_ms`):
//! in whole seconds, a 3 s grace ended anywhere from 2 to 3 s after the
//! rotate. Existing values are converted.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokenSecrets {
    Table,
    ExpiresAt,
    ExpiresAtMs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokenSecrets::Table)
                    .rename_column(ApiTokenSecrets::ExpiresAt, ApiTokenSecrets::ExpiresAtMs)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE api_token_secrets SET expires_at_ms = expires_at_ms * 1000 \
                 WHERE expires_at_ms IS NOT NULL",
            )
            .await?;
        Ok(())
    }
}
