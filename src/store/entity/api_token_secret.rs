//! `api_token_secrets`: the SHA-256 digests that authenticate a token. A
//! token has one, or two during a rotation's grace period.

use sea_orm::entity::prelude::*;

/// A secret digest row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_token_secrets")]
pub struct Model {
    /// SHA-256 of the secret's random bytes.
    #[sea_orm(primary_key, auto_increment = false)]
    pub digest: Vec<u8>,
    /// The token this secret belongs to.
    pub token_id: String,
    /// When the secret was issued, Unix seconds.
    pub created_at: i64,
    /// When a rotated-out secret stops working, Unix milliseconds; `None`
    /// for the current secret.
    pub expires_at_ms: Option<i64>,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
