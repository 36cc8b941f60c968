//! `api_token_roles`: the role bindings of each token.

use sea_orm::entity::prelude::*;

/// A role binding row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_token_roles")]
pub struct Model {
    /// The token holding the role.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_id: String,
    /// ORGANIZATION, WORKSPACE, DEPLOYMENT, DAG or DAG_TAG.
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity_type: String,
    /// The entity (for DAG_TAG, the tag).
    #[sea_orm(primary_key, auto_increment = false)]
    pub entity_id: String,
    /// For DAG and DAG_TAG, the deployment; empty otherwise (so it can be
    /// part of the primary key on both databases).
    #[sea_orm(primary_key, auto_increment = false)]
    pub deployment_id: String,
    /// Copy of the token's organization, so filter indexes are per organization.
    pub organization_id: String,
    /// The role name.
    pub role: String,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
