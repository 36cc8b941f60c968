//! Audit rows: written inside the mutation's transaction, read per token.

use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entity::{api_token, audit_event};
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

/// Failed authentications from one client address naming one token (or
/// none), aggregated over a flush interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    /// The token the presented secret named, if it named one.
    pub token_id: Option<TokenId>,
    /// The client address.
    pub ip: Option<String>,
    /// How many failures.
    pub count: u32,
    /// The last one (Unix seconds).
    pub last_at: i64,
    /// Why, in words (never the secret).
    pub reason: &'static str,
}

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

    /// Writes aggregated failed authentications. Failures naming an existing
    /// token are attributed to it (and show in its trail); the rest are kept
    /// per client address without a token, so random ids cannot grow the
    /// table by more than one row per address and flush.
    #[tracing::instrument(level = "debug", name = "db", skip_all, fields(op = "record_auth_failures", system = self.kind.as_str()))]
    pub async fn record_auth_failures(&self, records: &[FailureRecord]) -> Result<(), StoreError> {
        let _timer = super::DbTimer::start();
        if records.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = records
            .iter()
            .filter_map(|r| r.token_id.as_ref())
            .map(TokenId::as_str)
            .collect();
        let known: Vec<api_token::Model> = if ids.is_empty() {
            Vec::new()
        } else {
            api_token::Entity::find()
                .filter(api_token::Column::Id.is_in(ids))
                .all(&self.read)
                .await?
        };
        let mut rows = Vec::new();
        // Failures naming no known token, per (address, reason): reasons are
        // a fixed set, so this stays small whatever the client sends.
        let mut anonymous: std::collections::BTreeMap<(Option<String>, &'static str), (u32, i64)> =
            Default::default();
        for record in records {
            let token = record
                .token_id
                .as_ref()
                .and_then(|id| known.iter().find(|t| t.id == id.as_str()));
            match token {
                Some(t) => rows.push(failure_row(
                    Some(t),
                    record.ip.clone(),
                    record.count,
                    record.last_at,
                    record.reason,
                )),
                None => {
                    let entry = anonymous
                        .entry((record.ip.clone(), record.reason))
                        .or_insert((0, 0));
                    entry.0 = entry.0.saturating_add(record.count);
                    entry.1 = entry.1.max(record.last_at);
                }
            }
        }
        for ((ip, reason), (count, last_at)) in anonymous {
            rows.push(failure_row(None, ip, count, last_at, reason));
        }
        for chunk in rows.chunks(200) {
            audit_event::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&self.write)
                .await?;
        }
        Ok(())
    }
}

fn failure_row(
    token: Option<&api_token::Model>,
    ip: Option<String>,
    count: u32,
    last_at: i64,
    reason: &str,
) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        id: NotSet,
        organization_id: Set(token.map(|t| t.organization_id.clone())),
        token_id: Set(token.map(|t| t.id.clone())),
        token_type: Set(token.map(|t| t.token_type.clone())),
        token_entity_id: Set(token.map(|t| t.entity_id.clone())),
        action: Set(AuditAction::AuthenticationFailed.as_str().to_owned()),
        actor_id: Set(None),
        actor_type: Set(None),
        actor_name: Set(None),
        ip: Set(ip),
        occurred_at: Set(last_at),
        detail: Set(reason.to_owned()),
        count: Set(i32::try_from(count).unwrap_or(i32::MAX)),
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
