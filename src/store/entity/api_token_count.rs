//! `api_token_counts`: how many tokens each (organization, type, entity,
//! kind) has; written in the same transaction as Create and Delete.

use sea_orm::entity::prelude::*;

/// A count row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_token_counts")]
pub struct Model {
    /// Organization.
    #[sea_orm(primary_key, auto_increment = false)]
    pub organization_id: String,
    /// ORGANIZATION, WORKSPACE or DEPLOYMENT.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_type: String,
    /// The organization, workspace or deployment.
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity_id: String,
    /// STANDARD or DIRECT_ACCESS.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// Tokens.
    pub tokens: i64,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
