//! `api_tokens`: one row per live token.

use sea_orm::entity::prelude::*;

/// A token row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    /// Generated id; also the public part of the secret.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owning organization.
    pub organization_id: String,
    /// Trimmed name.
    pub name: String,
    /// Description.
    pub description: String,
    /// ORGANIZATION, WORKSPACE or DEPLOYMENT.
    pub token_type: String,
    /// The organization, workspace or deployment the token belongs to.
    pub entity_id: String,
    /// STANDARD or DIRECT_ACCESS.
    pub kind: String,
    /// Display form of the current secret.
    pub short_token: String,
    /// Whether the token may be used.
    pub enabled: bool,
    /// Validity start, Unix seconds.
    pub start_at: i64,
    /// Validity end, Unix seconds.
    pub end_at: Option<i64>,
    /// Expiry period in days.
    pub expiry_days: Option<i32>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last change, Unix seconds.
    pub updated_at: i64,
    /// Subject id of the creator.
    pub created_by: String,
    /// Subject id of the last changer.
    pub updated_by: String,
    /// Last use, Unix seconds.
    pub last_used_at: Option<i64>,
    /// Client address of the last use.
    pub last_used_ip: Option<String>,
    /// Last rotation, Unix seconds; NULL if never rotated.
    pub last_rotated_at: Option<i64>,
}

/// No relations are navigated through sea-orm; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
