//! `api_tokens.last_rotated_at` (issue 18.4, Astronomer's `lastRotatedAt`):
//! when the token last got a new secret, Unix seconds; NULL for a token
//! never rotated. Rotate sets it in the same UPDATE that locks the row, so
//! it commits with the new secret or not at all. Existing rows stay NULL:
//! their rotations happened before the column existed and their times are
//! not recorded anywhere but the audit trail, which may have been pruned.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    LastRotatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(
                        ColumnDef::new(ApiTokens::LastRotatedAt)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }
}
