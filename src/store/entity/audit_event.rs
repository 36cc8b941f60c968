//! `audit_events`: append-only trail of mutations and failed
//! authentications. No foreign keys: events outlive deleted tokens.

use sea_orm::entity::prelude::*;

/// An audit row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// Increasing id.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Organization of the token (absent for failures naming no known token).
    pub organization_id: Option<String>,
    /// The token.
    pub token_id: Option<String>,
    /// The token's type when the event happened.
    pub token_type: Option<String>,
    /// The token's entity when the event happened.
    pub token_entity_id: Option<String>,
    /// CREATE, UPDATE, UPDATE_ROLES, ROTATE, DELETE, AUTHENTICATION_FAILED.
    pub action: String,
    /// Subject id of the actor.
    pub actor_id: Option<String>,
    /// USER or SERVICEKEY.
    pub actor_type: Option<String>,
    /// Username or token name of the actor.
    pub actor_name: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// When, Unix seconds.
    pub occurred_at: i64,
    /// What changed, in words; never a secret.
    pub detail: String,
    /// Occurrences aggregated.
    pub count: i32,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
