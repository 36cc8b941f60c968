//! Token queries: create, get, list, find by secret digest.

use std::collections::HashMap;

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use super::audit::{self, EventScope};
use super::convert::{
    role_from_row, role_to_row, subject_from_row, subject_to_row, token_from_row,
};
use super::entity::{api_token, api_token_count, api_token_role, api_token_secret, subject};
use super::{Store, StoreError};
use crate::domain::audit::{Actor, AuditAction};
use crate::domain::ids::{EntityId, OrganizationId, TokenId};
use crate::domain::permission::TokenScope;
use crate::domain::role::RoleBinding;
use crate::domain::secret::SecretDigest;
use crate::domain::subject::Subject;
use crate::domain::token::{ApiToken, NewToken, TokenKind, TokenType};

/// A token's row as found for authorization: its scope, not yet its roles.
#[derive(Debug, Clone)]
pub struct TokenHead {
    /// The token's id.
    pub id: TokenId,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its type.
    pub token_type: TokenType,
    /// Its organization, workspace or deployment.
    pub entity_id: EntityId,
    /// Its name.
    pub name: String,
    pub(super) row: api_token::Model,
}

impl TokenHead {
    fn from_row(row: api_token::Model) -> Result<Self, StoreError> {
        let token_type = TokenType::from_name(&row.token_type).ok_or_else(|| {
            StoreError::Corrupt(format!("api_tokens.token_type holds {:?}", row.token_type))
        })?;
        Ok(Self {
            id: TokenId::from_stored(row.id.clone()),
            organization_id: OrganizationId::from_stored(row.organization_id.clone()),
            token_type,
            entity_id: EntityId::from_stored(row.entity_id.clone()),
            name: row.name.clone(),
            row,
        })
    }

    /// What authorization decides on.
    pub fn scope(&self) -> TokenScope<'_> {
        TokenScope {
            token_type: self.token_type,
            entity_id: &self.entity_id,
        }
    }

    /// Where its audit events go.
    pub(super) fn event_scope(&self) -> EventScope<'_> {
        EventScope {
            organization_id: &self.organization_id,
            token_id: &self.id,
            token_type: self.token_type,
            entity_id: &self.entity_id,
        }
    }
}

/// A token found by one of its secret digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMatch {
    /// The token.
    pub token: ApiToken,
    /// When this particular secret stops working, Unix milliseconds (set
    /// only for a secret rotated out with a grace period).
    pub secret_expires_at_ms: Option<i64>,
}

/// What Create writes besides the validated request.
#[derive(Debug, Clone)]
pub struct CreateRecord<'a> {
    /// The generated id.
    pub id: &'a TokenId,
    /// Digest of the generated secret.
    pub digest: &'a SecretDigest,
    /// Display form of the generated secret.
    pub short_token: &'a str,
    /// Who creates it.
    pub creator: &'a Subject,
    /// From which client address (none for the command line).
    pub ip: Option<&'a str>,
    /// When (Unix seconds).
    pub now: i64,
    /// The audit event's detail.
    pub detail: &'a str,
}

impl Store {
    /// Writes a new token, its secret digest, its role and its creator in
    /// one transaction, and returns the token as stored.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "create_token", system = self.kind.as_str()))]
    pub async fn create_token(
        &self,
        new: &NewToken,
        record: &CreateRecord<'_>,
    ) -> Result<ApiToken, StoreError> {
        let _timer = super::DbTimer::start();
        let txn = self.write.begin().await?;
        upsert_subject(&txn, record.creator).await?;
        let end_at = new.end_at();
        api_token::Entity::insert(api_token::ActiveModel {
            id: Set(record.id.as_str().to_owned()),
            organization_id: Set(new.organization_id.as_str().to_owned()),
            name: Set(new.name.as_str().to_owned()),
            description: Set(new.description.as_str().to_owned()),
            token_type: Set(new.token_type.as_str().to_owned()),
            entity_id: Set(new.entity_id.as_str().to_owned()),
            kind: Set(new.kind.as_str().to_owned()),
            short_token: Set(record.short_token.to_owned()),
            enabled: Set(true),
            start_at: Set(new.start_at),
            end_at: Set(end_at),
            expiry_days: Set(new.expiry.map(|e| e.days())),
            created_at: Set(record.now),
            updated_at: Set(record.now),
            created_by: Set(record.creator.id.clone()),
            updated_by: Set(record.creator.id.clone()),
            last_used_at: Set(None),
            last_used_ip: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        api_token_secret::Entity::insert(api_token_secret::ActiveModel {
            digest: Set(record.digest.as_bytes().to_vec()),
            token_id: Set(record.id.as_str().to_owned()),
            created_at: Set(record.now),
            expires_at_ms: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        api_token_role::Entity::insert(role_to_row(record.id, &new.organization_id, &new.role))
            .exec_without_returning(&txn)
            .await?;
        adjust_count(
            &txn,
            &new.organization_id,
            new.token_type,
            &new.entity_id,
            new.kind,
            1,
        )
        .await?;
        // A new token: replicas that answered "unknown" for its id learn of it.
        super::changes::announce(&txn, self.kind, record.id, record.now.saturating_mul(1000))
            .await?;
        audit::append(
            &txn,
            EventScope {
                organization_id: &new.organization_id,
                token_id: record.id,
                token_type: new.token_type,
                entity_id: &new.entity_id,
            },
            AuditAction::Create,
            &Actor {
                subject: record.creator,
                ip: record.ip,
                at: record.now,
            },
            record.detail.to_owned(),
        )
        .await?;
        txn.commit().await?;
        Ok(ApiToken {
            id: record.id.clone(),
            organization_id: new.organization_id.clone(),
            name: new.name.as_str().to_owned(),
            description: new.description.as_str().to_owned(),
            token_type: new.token_type,
            entity_id: new.entity_id.clone(),
            kind: new.kind,
            short_token: record.short_token.to_owned(),
            enabled: true,
            start_at: new.start_at,
            end_at,
            expiry_days: new.expiry.map(|e| e.days()),
            created_at: record.now,
            updated_at: record.now,
            created_by: record.creator.clone(),
            updated_by: record.creator.clone(),
            last_used_at: None,
            last_used_ip: None,
            roles: vec![new.role.clone()],
        })
    }

    /// The token `id` of organization `org`, if it exists.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "get_token", system = self.kind.as_str()))]
    pub async fn get_token(
        &self,
        org: &OrganizationId,
        id: &TokenId,
    ) -> Result<Option<ApiToken>, StoreError> {
        let _timer = super::DbTimer::start();
        match self.find_head(org, id).await? {
            Some(head) => self.complete(head).await.map(Some),
            None => Ok(None),
        }
    }

    /// The row of token `id` of `org`, without its roles and subjects: one
    /// primary-key lookup, the same cost whether the token is absent, in
    /// another organization or present, so authorization can decide before
    /// anything else is read.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "find_head", system = self.kind.as_str()))]
    pub async fn find_head(
        &self,
        org: &OrganizationId,
        id: &TokenId,
    ) -> Result<Option<TokenHead>, StoreError> {
        let _timer = super::DbTimer::start();
        let row = api_token::Entity::find_by_id(id.as_str())
            .filter(api_token::Column::OrganizationId.eq(org.as_str()))
            .one(&self.read)
            .await?;
        row.map(TokenHead::from_row).transpose()
    }

    /// The whole token behind `head`.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "complete", system = self.kind.as_str()))]
    pub async fn complete(&self, head: TokenHead) -> Result<ApiToken, StoreError> {
        let _timer = super::DbTimer::start();
        let id = head.row.id.clone();
        self.hydrate(vec![head.row])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("token {id} vanished while read")))
    }

    /// The token one of whose secrets has `digest`, if any.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "find_by_digest", system = self.kind.as_str()))]
    pub async fn find_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<DigestMatch>, StoreError> {
        let _timer = super::DbTimer::start();
        let Some(secret) = api_token_secret::Entity::find_by_id(digest.as_bytes().to_vec())
            .one(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let Some(row) = api_token::Entity::find_by_id(secret.token_id)
            .one(&self.read)
            .await?
        else {
            return Ok(None);
        };
        Ok(self
            .hydrate(vec![row])
            .await?
            .pop()
            .map(|token| DigestMatch {
                token,
                secret_expires_at_ms: secret.expires_at_ms,
            }))
    }

    /// Up to `limit` token ids greater than `after`, in id order: one page
    /// of the live-id set's load (a primary-key range scan).
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "token_ids_after", system = self.kind.as_str()))]
    pub async fn token_ids_after(
        &self,
        after: Option<&TokenId>,
        limit: u64,
    ) -> Result<Vec<TokenId>, StoreError> {
        let _timer = super::DbTimer::start();
        let mut query = api_token::Entity::find()
            .select_only()
            .column(api_token::Column::Id)
            .order_by_asc(api_token::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(api_token::Column::Id.gt(after.as_str()));
        }
        let ids: Vec<String> = query.into_tuple().all(&self.read).await?;
        Ok(ids.into_iter().map(TokenId::from_stored).collect())
    }

    /// Loads the roles and subjects of `rows`, keeping their order.
    pub(super) async fn hydrate(
        &self,
        rows: Vec<api_token::Model>,
    ) -> Result<Vec<ApiToken>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let role_rows = api_token_role::Entity::find()
            .filter(api_token_role::Column::TokenId.is_in(ids))
            .order_by_asc(api_token_role::Column::TokenId)
            .order_by_asc(api_token_role::Column::EntityType)
            .order_by_asc(api_token_role::Column::DeploymentId)
            .order_by_asc(api_token_role::Column::EntityId)
            .all(&self.read)
            .await?;
        let mut roles: HashMap<String, Vec<RoleBinding>> = HashMap::new();
        for row in &role_rows {
            roles
                .entry(row.token_id.clone())
                .or_default()
                .push(role_from_row(row)?);
        }
        let mut subject_ids: Vec<&str> = rows
            .iter()
            .flat_map(|r| [r.created_by.as_str(), r.updated_by.as_str()])
            .collect();
        subject_ids.sort_unstable();
        subject_ids.dedup();
        let subjects: HashMap<String, Subject> = subject::Entity::find()
            .filter(subject::Column::Id.is_in(subject_ids))
            .all(&self.read)
            .await?
            .into_iter()
            .map(|row| subject_from_row(row).map(|s| (s.id.clone(), s)))
            .collect::<Result<_, _>>()?;
        let lookup = |id: &str| {
            subjects
                .get(id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("subject {id:?} is missing")))
        };
        rows.into_iter()
            .map(|row| {
                let created_by = lookup(&row.created_by)?;
                let updated_by = lookup(&row.updated_by)?;
                let token_roles = roles.remove(&row.id).unwrap_or_default();
                token_from_row(row, token_roles, created_by, updated_by)
            })
            .collect()
    }
}

/// Adds `delta` to the count of (organization, type, entity, kind).
pub(super) async fn adjust_count<C: ConnectionTrait>(
    db: &C,
    org: &OrganizationId,
    token_type: TokenType,
    entity_id: &EntityId,
    kind: TokenKind,
    delta: i64,
) -> Result<(), StoreError> {
    use api_token_count::Column as C;
    api_token_count::Entity::insert(api_token_count::ActiveModel {
        organization_id: Set(org.as_str().to_owned()),
        token_type: Set(token_type.as_str().to_owned()),
        entity_id: Set(entity_id.as_str().to_owned()),
        kind: Set(kind.as_str().to_owned()),
        tokens: Set(std::cmp::max(delta, 0)),
    })
    .on_conflict(
        OnConflict::columns([C::OrganizationId, C::TokenType, C::EntityId, C::Kind])
            .value(
                C::Tokens,
                Expr::col((api_token_count::Entity, C::Tokens)).add(delta),
            )
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Inserts a subject, or refreshes its names if it exists.
pub(super) async fn upsert_subject<C: ConnectionTrait>(
    db: &C,
    subject: &Subject,
) -> Result<(), StoreError> {
    subject::Entity::insert(subject_to_row(subject))
        .on_conflict(
            OnConflict::column(subject::Column::Id)
                .update_columns([
                    subject::Column::Username,
                    subject::Column::FullName,
                    subject::Column::AvatarUrl,
                    subject::Column::ApiTokenName,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}
