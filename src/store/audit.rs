//! Audit rows: written inside the mutation's transaction, read per token.

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::audit_event;
use super::{Store, StoreError};
use crate::domain::audit::{Actor, AuditAction, AuditEvent};
use crate::domain::ids::{EntityId, OrganizationId, TokenId};
use crate::domain::list::Page;
use crate::domain::subject::{Subject, SubjectType};
use crate::domain::token::TokenType;

/// The token an event is about, as it was when the event happened.
#[derive(Debug, Clone, Copy)]
pub(super) struct EventScope<'a> {
    pub organization_id: &'a OrganizationId,
    pub token_id: &'a TokenId,
    pub token_type: TokenType,
    pub entity_id: &'a EntityId,
}

/// Appends one mutation event (inside the caller's transaction).
pub(super) async fn append<C: ConnectionTrait>(
    db: &C,
    scope: EventScope<'_>,
    action: AuditAction,
    actor: &Actor<'_>,
    detail: String,
) -> Result<(), StoreError> {
    audit_event::Entity::insert(audit_event::ActiveModel {
        id: NotSet,
        organization_id: Set(Some(scope.organization_id.as_str().to_owned())),
        token_id: Set(Some(scope.token_id.as_str().to_owned())),
        token_type: Set(Some(scope.token_type.as_str().to_owned())),
        token_entity_id: Set(Some(scope.entity_id.as_str().to_owned())),
        action: Set(action.as_str().to_owned()),
        actor_id: Set(Some(actor.subject.id.clone())),
        actor_type: Set(Some(actor.subject.subject_type.as_str().to_owned())),
        actor_name: Set(Some(actor.subject.display_name().to_owned())),
        ip: Set(actor.ip.map(str::to_owned)),
        occurred_at: Set(actor.at),
        detail: Set(detail),
        count: Set(1),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The token a failed authentication is charged to: one whose real secret
/// was presented (while it was disabled, expired, not yet valid, or rotated
/// out). A secret that merely names a token id charges nobody.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FailedToken {
    /// The token's organization: whose trail the failure goes to.
    pub organization_id: OrganizationId,
    /// The token.
    pub token_id: TokenId,
    /// Its type when the secret was presented.
    pub token_type: TokenType,
    /// Its entity when the secret was presented.
    pub entity_id: EntityId,
}

/// Where failed authentications came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureOrigin {
    /// One client address.
    Address(String),
    /// No address was known.
    Unknown,
    /// Addresses past the recorder's bound, counted together.
    OtherAddresses,
}

/// Failed authentications from one origin, charged to one token (or to
/// none), for one reason, aggregated over a flush interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// The token whose real secret was presented, if one was.
    pub token: Option<FailedToken>,
    /// The client address, or which bucket.
    pub origin: FailureOrigin,
    /// How many failures.
    pub count: u32,
    /// The last one (Unix seconds).
    pub last_at: i64,
    /// Why, in words (never the secret).
    pub reason: &'static str,
}

/// Audit rows deleted by one pruning statement: small enough that each
/// DELETE holds its locks for milliseconds.
pub const PRUNE_BATCH: u64 = 1000;

impl Store {
    /// One page of the events of token `id` in `org`, newest first, and how
    /// many there are.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "list_audit_events", system = self.kind.as_str()))]
    pub async fn list_audit_events(
        &self,
        org: &OrganizationId,
        id: &TokenId,
        page: Page,
    ) -> Result<(Vec<AuditEvent>, u64), StoreError> {
        let _timer = super::DbTimer::start();
        let select = audit_event::Entity::find()
            .filter(audit_event::Column::OrganizationId.eq(org.as_str()))
            .filter(audit_event::Column::TokenId.eq(id.as_str()));
        let total = select.clone().count(&self.read).await?;
        if page.limit() == 0 {
            return Ok((Vec::new(), total));
        }
        let rows = select
            .order_by_desc(audit_event::Column::Id)
            .offset(u64::from(page.offset()))
            .limit(u64::from(page.limit()))
            .all(&self.read)
            .await?;
        let events = rows
            .into_iter()
            .map(event_from_row)
            .collect::<Result<_, _>>()?;
        Ok((events, total))
    }

    /// The scope token `id` of `org` had when its last event was written:
    /// how ListAuditEvents authorizes reading the trail of a deleted token.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "last_audited_scope", system = self.kind.as_str()))]
    pub async fn last_audited_scope(
        &self,
        org: &OrganizationId,
        id: &TokenId,
    ) -> Result<Option<(TokenType, EntityId)>, StoreError> {
        let _timer = super::DbTimer::start();
        let row = audit_event::Entity::find()
            .filter(audit_event::Column::OrganizationId.eq(org.as_str()))
            .filter(audit_event::Column::TokenId.eq(id.as_str()))
            .filter(audit_event::Column::TokenType.is_not_null())
            .order_by_desc(audit_event::Column::Id)
            .one(&self.read)
            .await?;
        Ok(row.and_then(|r| {
            let token_type = TokenType::from_name(r.token_type.as_deref()?)?;
            Some((token_type, EntityId::from_stored(r.token_entity_id?)))
        }))
    }

    /// Writes aggregated failed authentications as they come: the caller
    /// (the recorder) has bounded how many records one flush holds. A record
    /// with a token goes to that token's trail; the rest carry no tenant and
    /// are seen by no API caller.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "record_auth_failures", system = self.kind.as_str()))]
    pub async fn record_auth_failures(&self, records: &[FailureRecord]) -> Result<(), StoreError> {
        let _timer = super::DbTimer::start();
        let rows: Vec<_> = records.iter().map(failure_row).collect();
        for chunk in rows.chunks(200) {
            audit_event::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&self.write)
                .await?;
        }
        Ok(())
    }

    /// Deletes at most [`PRUNE_BATCH`] audit rows that happened before
    /// `cutoff` (Unix seconds); returns how many. One short statement, found
    /// through `idx_audit_events_occurred_at`; the caller repeats it with a
    /// pause until fewer than a batch are deleted.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "prune_audit_events", system = self.kind.as_str()))]
    pub async fn prune_audit_events(&self, cutoff: i64) -> Result<u64, StoreError> {
        let _timer = super::DbTimer::start();
        let backend = self.backend();
        let placeholder = match backend {
            sea_orm::DbBackend::Postgres => "$1",
            _ => "?",
        };
        let sql = format!(
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE occurred_at < {placeholder} LIMIT {PRUNE_BATCH})"
        );
        let statement = sea_orm::Statement::from_sql_and_values(backend, sql, [cutoff.into()]);
        Ok(self.write.execute_raw(statement).await?.rows_affected())
    }
}

fn failure_row(record: &FailureRecord) -> audit_event::ActiveModel {
    let token = record.token.as_ref();
    let (ip, detail) = match &record.origin {
        FailureOrigin::Address(ip) => (Some(ip.clone()), record.reason.to_owned()),
        FailureOrigin::Unknown => (None, record.reason.to_owned()),
        FailureOrigin::OtherAddresses => (
            None,
            format!(
                "{} (from addresses past the per-interval bound)",
                record.reason
            ),
        ),
    };
    audit_event::ActiveModel {
        id: NotSet,
        organization_id: Set(token.map(|t| t.organization_id.as_str().to_owned())),
        token_id: Set(token.map(|t| t.token_id.as_str().to_owned())),
        token_type: Set(token.map(|t| t.token_type.as_str().to_owned())),
        token_entity_id: Set(token.map(|t| t.entity_id.as_str().to_owned())),
        action: Set(AuditAction::AuthenticationFailed.as_str().to_owned()),
        actor_id: Set(None),
        actor_type: Set(None),
        actor_name: Set(None),
        ip: Set(ip),
        occurred_at: Set(record.last_at),
        detail: Set(detail),
        count: Set(i32::try_from(record.count).unwrap_or(i32::MAX)),
    }
}

fn event_from_row(row: audit_event::Model) -> Result<AuditEvent, StoreError> {
    let action = AuditAction::from_name(&row.action).ok_or_else(|| {
        StoreError::Corrupt(format!("audit_events.action holds {:?}", row.action))
    })?;
    let actor = match (
        row.actor_id,
        row.actor_type.as_deref().and_then(SubjectType::from_name),
    ) {
        (Some(id), Some(subject_type)) => {
            let name = row.actor_name.unwrap_or_default();
            let (username, api_token_name) = match subject_type {
                SubjectType::User => (name, String::new()),
                SubjectType::ServiceKey => (String::new(), name),
            };
            Some(Subject {
                id,
                subject_type,
                username,
                full_name: String::new(),
                avatar_url: String::new(),
                api_token_name,
            })
        }
        _ => None,
    };
    Ok(AuditEvent {
        id: row.id,
        action,
        token_id: TokenId::from_stored(row.token_id.unwrap_or_default()),
        actor,
        ip: row.ip,
        occurred_at: row.occurred_at,
        detail: row.detail,
        count: row.count,
    })
}
