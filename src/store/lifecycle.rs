//! Token mutations after Create: update, replace roles, rotate, delete.
//!
//! Each runs in one transaction whose first statement updates the token's
//! row: that locks it on PostgreSQL, so concurrent mutations of one token run
//! one after the other (SQLite has a single writer anyway), and a token
//! deleted meanwhile is noticed (no row updated: [`Mutated::Gone`]). The
//! audit row is written in the same transaction.
//!
//! Mutations that hand out or re-enable a secret take a [`RoleGuard`]: it is
//! asked about the token's roles as they are under the row lock, so a role
//! added by a concurrent UpdateRoles cannot slip past the caller's grants.

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter, TransactionTrait,
};

use super::audit::{self, EventScope};
use super::changes;
use super::convert::{role_from_row, role_to_row};
use super::entity::{api_token, api_token_role, api_token_secret};
use super::tokens::{TokenHead, adjust_count, upsert_subject};
use super::{Store, StoreError};
use crate::domain::audit::{Actor, AuditAction};
use crate::domain::role::RoleBinding;
use crate::domain::secret::SecretDigest;
use crate::domain::token::{ApiToken, GracePeriod, RoleSet, TokenKind, TokenUpdate};

/// Asked, under the token's row lock, about the roles the token holds now:
/// the first binding the caller may not hand out, if any.
pub type RoleGuard<'a> = &'a (dyn Fn(&[RoleBinding]) -> Option<RoleBinding> + Send + Sync);

/// A new secret for a token, and how long the old ones keep working.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    /// Digest of the new secret.
    pub digest: &'a SecretDigest,
    /// Display form of the new secret.
    pub short_token: &'a str,
    /// How long older secrets keep working.
    pub grace: GracePeriod,
    /// When, in Unix milliseconds (the actor's `at` is the same instant in
    /// seconds).
    pub now_ms: i64,
    /// The audit event's detail.
    pub detail: &'a str,
}

/// How a guarded mutation ended.
#[derive(Debug)]
pub enum Mutated<T> {
    /// Committed; the token as it is now.
    Done(T),
    /// The token is gone (deleted meanwhile, or never there).
    Gone,
    /// The guard refused this binding the token holds; nothing changed.
    Refused(RoleBinding),
}

impl<T> Mutated<T> {
    fn from_outcome(outcome: Result<Option<T>, RoleBinding>) -> Self {
        match outcome {
            Ok(Some(value)) => Self::Done(value),
            Ok(None) => Self::Gone,
            Err(binding) => Self::Refused(binding),
        }
    }
}

impl Store {
    /// Applies `update` to the token behind `head`, if `guard` (when given)
    /// accepts the token's roles.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "update_token", system = self.kind.as_str()))]
    pub async fn update_token(
        &self,
        head: &TokenHead,
        update: &TokenUpdate,
        actor: &Actor<'_>,
        guard: Option<RoleGuard<'_>>,
        detail: String,
    ) -> Result<Mutated<ApiToken>, StoreError> {
        let _timer = super::DbTimer::start();
        let mut sets: Vec<(api_token::Column, SimpleExpr)> = Vec::new();
        if let Some(name) = &update.name {
            sets.push((api_token::Column::Name, Expr::value(name.as_str())));
        }
        if let Some(description) = &update.description {
            sets.push((
                api_token::Column::Description,
                Expr::value(description.as_str()),
            ));
        }
        if let Some(enabled) = update.enabled {
            sets.push((api_token::Column::Enabled, Expr::value(enabled)));
        }
        let txn = match self.begin_mutation(head, actor, sets, guard).await? {
            Mutated::Done(txn) => txn,
            Mutated::Gone => return Ok(Mutated::Gone),
            Mutated::Refused(binding) => return Ok(Mutated::Refused(binding)),
        };
        audit::append(&txn, head.event_scope(), AuditAction::Update, actor, detail).await?;
        txn.commit().await?;
        self.reread(head).await
    }

    /// Replaces every role of the token behind `head` with `roles`.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "replace_roles", system = self.kind.as_str()))]
    pub async fn replace_roles(
        &self,
        head: &TokenHead,
        roles: &RoleSet,
        actor: &Actor<'_>,
        detail: String,
    ) -> Result<Option<ApiToken>, StoreError> {
        let _timer = super::DbTimer::start();
        let Mutated::Done(txn) = self.begin_mutation(head, actor, Vec::new(), None).await? else {
            return Ok(None);
        };
        api_token_role::Entity::delete_many()
            .filter(api_token_role::Column::TokenId.eq(head.id.as_str()))
            .exec(&txn)
            .await?;
        let rows: Vec<api_token_role::ActiveModel> = roles
            .bindings()
            .iter()
            .map(|b| role_to_row(&head.id, &head.organization_id, b))
            .collect();
        api_token_role::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
        audit::append(
            &txn,
            head.event_scope(),
            AuditAction::UpdateRoles,
            actor,
            detail,
        )
        .await?;
        txn.commit().await?;
        self.get_token(&head.organization_id, &head.id).await
    }

    /// Makes the rotation's digest the token's only current secret. Every
    /// older secret stops working at once (grace 0) or works for at most the
    /// grace period more, to the millisecond; secrets whose grace has ended
    /// are removed.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "rotate_secret", system = self.kind.as_str()))]
    pub async fn rotate_secret(
        &self,
        head: &TokenHead,
        rotation: &Rotation<'_>,
        actor: &Actor<'_>,
        guard: RoleGuard<'_>,
    ) -> Result<Mutated<ApiToken>, StoreError> {
        let _timer = super::DbTimer::start();
        let Rotation {
            digest,
            short_token,
            grace,
            now_ms,
            detail,
        } = *rotation;
        // The same UPDATE that locks the row: the rotation time commits with
        // the new secret or not at all.
        let sets = vec![
            (api_token::Column::ShortToken, Expr::value(short_token)),
            (api_token::Column::LastRotatedAt, Expr::value(actor.at)),
        ];
        let txn = match self.begin_mutation(head, actor, sets, Some(guard)).await? {
            Mutated::Done(txn) => txn,
            Mutated::Gone => return Ok(Mutated::Gone),
            Mutated::Refused(binding) => return Ok(Mutated::Refused(binding)),
        };
        let grace_end = now_ms.saturating_add(grace.seconds().saturating_mul(1000));
        let secrets = || {
            api_token_secret::Entity::delete_many()
                .filter(api_token_secret::Column::TokenId.eq(head.id.as_str()))
        };
        if grace.seconds() == 0 {
            secrets().exec(&txn).await?;
        } else {
            secrets()
                .filter(api_token_secret::Column::ExpiresAtMs.lte(now_ms))
                .exec(&txn)
                .await?;
            api_token_secret::Entity::update_many()
                .col_expr(
                    api_token_secret::Column::ExpiresAtMs,
                    Expr::value(grace_end),
                )
                .filter(api_token_secret::Column::TokenId.eq(head.id.as_str()))
                .filter(
                    Condition::any()
                        .add(api_token_secret::Column::ExpiresAtMs.is_null())
                        .add(api_token_secret::Column::ExpiresAtMs.gt(grace_end)),
                )
                .exec(&txn)
                .await?;
        }
        api_token_secret::Entity::insert(api_token_secret::ActiveModel {
            digest: Set(digest.as_bytes().to_vec()),
            token_id: Set(head.id.as_str().to_owned()),
            created_at: Set(actor.at),
            expires_at_ms: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        audit::append(
            &txn,
            head.event_scope(),
            AuditAction::Rotate,
            actor,
            detail.to_owned(),
        )
        .await?;
        txn.commit().await?;
        self.reread(head).await
    }

    /// The token behind `head` as committed, after a guarded mutation.
    async fn reread(&self, head: &TokenHead) -> Result<Mutated<ApiToken>, StoreError> {
        Ok(Mutated::from_outcome(Ok(self
            .get_token(&head.organization_id, &head.id)
            .await?)))
    }

    /// Deletes the token behind `head` with its secrets and roles (its audit
    /// events stay). `false` if it was already gone.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "delete_token", system = self.kind.as_str()))]
    pub async fn delete_token(
        &self,
        head: &TokenHead,
        actor: &Actor<'_>,
        detail: String,
    ) -> Result<bool, StoreError> {
        let _timer = super::DbTimer::start();
        let txn = self.write.begin().await?;
        let deleted = api_token::Entity::delete_many()
            .filter(api_token::Column::Id.eq(head.id.as_str()))
            .filter(api_token::Column::OrganizationId.eq(head.organization_id.as_str()))
            .exec(&txn)
            .await?
            .rows_affected;
        if deleted == 0 {
            return Ok(false);
        }
        changes::announce(&txn, self.kind, &head.id, actor.at.saturating_mul(1000)).await?;
        upsert_subject(&txn, actor.subject).await?;
        let kind = TokenKind::from_name(&head.row.kind).ok_or_else(|| {
            StoreError::Corrupt(format!("api_tokens.kind holds {:?}", head.row.kind))
        })?;
        adjust_count(
            &txn,
            &head.organization_id,
            head.token_type,
            &head.entity_id,
            kind,
            -1,
        )
        .await?;
        let scope: EventScope<'_> = head.event_scope();
        audit::append(&txn, scope, AuditAction::Delete, actor, detail).await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Opens a mutation: records the actor, then touches the token row
    /// (`updated_at`, `updated_by` and `sets`), which locks it, then asks
    /// `guard` about the roles the token holds now. Anything but
    /// [`Mutated::Done`] rolls the transaction back.
    async fn begin_mutation(
        &self,
        head: &TokenHead,
        actor: &Actor<'_>,
        sets: Vec<(api_token::Column, SimpleExpr)>,
        guard: Option<RoleGuard<'_>>,
    ) -> Result<Mutated<DatabaseTransaction>, StoreError> {
        let txn = self.write.begin().await?;
        upsert_subject(&txn, actor.subject).await?;
        let mut update = api_token::Entity::update_many()
            .col_expr(api_token::Column::UpdatedAt, Expr::value(actor.at))
            .col_expr(
                api_token::Column::UpdatedBy,
                Expr::value(actor.subject.id.as_str()),
            );
        for (column, value) in sets {
            update = update.col_expr(column, value);
        }
        let touched = update
            .filter(api_token::Column::Id.eq(head.id.as_str()))
            .filter(api_token::Column::OrganizationId.eq(head.organization_id.as_str()))
            .exec(&txn)
            .await?
            .rows_affected;
        if touched != 1 {
            return Ok(Mutated::Gone);
        }
        // Every mutation changes what authentication may have cached.
        changes::announce(&txn, self.kind, &head.id, actor.at.saturating_mul(1000)).await?;
        if let Some(guard) = guard {
            let roles = api_token_role::Entity::find()
                .filter(api_token_role::Column::TokenId.eq(head.id.as_str()))
                .all(&txn)
                .await?
                .iter()
                .map(role_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(binding) = guard(&roles) {
                return Ok(Mutated::Refused(binding));
            }
        }
        Ok(Mutated::Done(txn))
    }
}
