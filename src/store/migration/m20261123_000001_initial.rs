//! Tokens, their secrets, their role bindings, and subjects.

use sea_orm_migration::prelude::*;

use super::text;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Subjects {
    Table,
    Id,
    SubjectType,
    Username,
    FullName,
    AvatarUrl,
    ApiTokenName,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    OrganizationId,
    Name,
    Description,
    TokenType,
    EntityId,
    Kind,
    ShortToken,
    Enabled,
    StartAt,
    EndAt,
    ExpiryDays,
    CreatedAt,
    UpdatedAt,
    CreatedBy,
    UpdatedBy,
    LastUsedAt,
    LastUsedIp,
}

#[derive(DeriveIden)]
enum ApiTokenSecrets {
    Table,
    Digest,
    TokenId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum ApiTokenRoles {
    Table,
    TokenId,
    EntityType,
    EntityId,
    DeploymentId,
    OrganizationId,
    Role,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_database_backend();
        manager
            .create_table(
                Table::create()
                    .table(Subjects::Table)
                    .col(text(Subjects::Id, db).primary_key())
                    .col(text(Subjects::SubjectType, db))
                    .col(text(Subjects::Username, db))
                    .col(text(Subjects::FullName, db))
                    .col(text(Subjects::AvatarUrl, db))
                    .col(text(Subjects::ApiTokenName, db))
                    .to_owned(),
            )
            .await?;
        create_tokens(manager, db).await?;
        create_secrets(manager, db).await?;
        create_roles(manager, db).await
    }
}

async fn create_tokens(manager: &SchemaManager<'_>, db: sea_orm::DbBackend) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(ApiTokens::Table)
                .col(text(ApiTokens::Id, db).primary_key())
                .col(text(ApiTokens::OrganizationId, db))
                .col(text(ApiTokens::Name, db))
                .col(text(ApiTokens::Description, db))
                .col(text(ApiTokens::TokenType, db))
                .col(text(ApiTokens::EntityId, db))
                .col(text(ApiTokens::Kind, db))
                .col(text(ApiTokens::ShortToken, db))
                .col(ColumnDef::new(ApiTokens::Enabled).boolean().not_null())
                .col(ColumnDef::new(ApiTokens::StartAt).big_integer().not_null())
                .col(ColumnDef::new(ApiTokens::EndAt).big_integer().null())
                .col(ColumnDef::new(ApiTokens::ExpiryDays).integer().null())
                .col(
                    ColumnDef::new(ApiTokens::CreatedAt)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ApiTokens::UpdatedAt)
                        .big_integer()
                        .not_null(),
                )
                .col(text(ApiTokens::CreatedBy, db))
                .col(text(ApiTokens::UpdatedBy, db))
                .col(ColumnDef::new(ApiTokens::LastUsedAt).big_integer().null())
                .col(ColumnDef::new(ApiTokens::LastUsedIp).text().null())
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokens::Table, ApiTokens::CreatedBy)
                        .to(Subjects::Table, Subjects::Id),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokens::Table, ApiTokens::UpdatedBy)
                        .to(Subjects::Table, Subjects::Id),
                )
                .to_owned(),
        )
        .await?;
    // List always filters by organization, then orders by one sort key with
    // the id as tie-break: one index per sort key keeps each order an index
    // walk. (organization_id, id) serves the default order.
    let sort_columns: [(&str, Option<ApiTokens>); 6] = [
        ("idx_api_tokens_org_id", None),
        ("idx_api_tokens_org_name", Some(ApiTokens::Name)),
        (
            "idx_api_tokens_org_description",
            Some(ApiTokens::Description),
        ),
        ("idx_api_tokens_org_created", Some(ApiTokens::CreatedAt)),
        ("idx_api_tokens_org_updated", Some(ApiTokens::UpdatedAt)),
        ("idx_api_tokens_org_start", Some(ApiTokens::StartAt)),
    ];
    for (name, column) in sort_columns {
        let mut index = Index::create();
        index
            .name(name)
            .table(ApiTokens::Table)
            .col(ApiTokens::OrganizationId);
        if let Some(column) = column {
            index.col(column);
        }
        manager
            .create_index(index.col(ApiTokens::Id).to_owned())
            .await?;
    }
    // Names are unique within a token's scope (its organization, workspace
    // or deployment), as the Astronomer CLI's --name lookups assume.
    manager
        .create_index(
            Index::create()
                .name("uq_api_tokens_scope_name")
                .table(ApiTokens::Table)
                .col(ApiTokens::OrganizationId)
                .col(ApiTokens::TokenType)
                .col(ApiTokens::EntityId)
                .col(ApiTokens::Name)
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_api_tokens_org_type")
                .table(ApiTokens::Table)
                .col(ApiTokens::OrganizationId)
                .col(ApiTokens::TokenType)
                .col(ApiTokens::Id)
                .to_owned(),
        )
        .await
}

async fn create_secrets(manager: &SchemaManager<'_>, db: sea_orm::DbBackend) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(ApiTokenSecrets::Table)
                .col(
                    ColumnDef::new(ApiTokenSecrets::Digest)
                        .binary()
                        .not_null()
                        .primary_key(),
                )
                .col(text(ApiTokenSecrets::TokenId, db))
                .col(
                    ColumnDef::new(ApiTokenSecrets::CreatedAt)
                        .big_integer()
                        .not_null(),
                )
                .col(
                    ColumnDef::new(ApiTokenSecrets::ExpiresAt)
                        .big_integer()
                        .null(),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokenSecrets::Table, ApiTokenSecrets::TokenId)
                        .to(ApiTokens::Table, ApiTokens::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_api_token_secrets_token")
                .table(ApiTokenSecrets::Table)
                .col(ApiTokenSecrets::TokenId)
                .to_owned(),
        )
        .await
}

async fn create_roles(manager: &SchemaManager<'_>, db: sea_orm::DbBackend) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(ApiTokenRoles::Table)
                .col(text(ApiTokenRoles::TokenId, db))
                .col(text(ApiTokenRoles::EntityType, db))
                .col(text(ApiTokenRoles::EntityId, db))
                .col(text(ApiTokenRoles::DeploymentId, db))
                .col(text(ApiTokenRoles::OrganizationId, db))
                .col(text(ApiTokenRoles::Role, db))
                .primary_key(
                    Index::create()
                        .col(ApiTokenRoles::TokenId)
                        .col(ApiTokenRoles::EntityType)
                        .col(ApiTokenRoles::EntityId)
                        .col(ApiTokenRoles::DeploymentId),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiTokenRoles::Table, ApiTokenRoles::TokenId)
                        .to(ApiTokens::Table, ApiTokens::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // workspaceId, dagId and dagTags filters: bindings on one entity.
    manager
        .create_index(
            Index::create()
                .name("idx_api_token_roles_entity")
                .table(ApiTokenRoles::Table)
                .col(ApiTokenRoles::OrganizationId)
                .col(ApiTokenRoles::EntityType)
                .col(ApiTokenRoles::EntityId)
                .col(ApiTokenRoles::TokenId)
                .to_owned(),
        )
        .await?;
    // deploymentId filter: DAG and DAG_TAG bindings inside a deployment.
    manager
        .create_index(
            Index::create()
                .name("idx_api_token_roles_deployment")
                .table(ApiTokenRoles::Table)
                .col(ApiTokenRoles::OrganizationId)
                .col(ApiTokenRoles::DeploymentId)
                .col(ApiTokenRoles::TokenId)
                .to_owned(),
        )
        .await
}
