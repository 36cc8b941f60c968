//! `subjects`: who created or changed tokens, deduplicated by id.

use sea_orm::entity::prelude::*;

/// A subject row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subjects")]
pub struct Model {
    /// Token id for a service key; derived from the username for a user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// USER or SERVICEKEY.
    pub subject_type: String,
    /// Username (users).
    pub username: String,
    /// Full name (users).
    pub full_name: String,
    /// Avatar URL.
    pub avatar_url: String,
    /// Token name (service keys).
    pub api_token_name: String,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
