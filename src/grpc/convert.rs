//! Domain -> protobuf: the wire form of answers. Encoding never fails
//! (requests go the other way in `validate`).

use prost_types::Timestamp;

use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::role::{EntityType, RoleBinding};
use crate::domain::secret::TokenPrefix;
use crate::domain::subject::{Subject, SubjectType};
use crate::domain::token::{ApiToken, TokenKind, TokenType};
use crate::pb;
use crate::pb::api_token::{Kind as PbKind, Type as PbType};
use crate::pb::api_token_role::EntityType as PbEntityType;
use crate::pb::audit_event::Action as PbAction;
use crate::pb::basic_subject_profile::SubjectType as PbSubjectType;
use crate::service::lookup::Lookup;
use crate::service::reads::{Events, Listing};
use crate::service::tokens::Issued;

/// A timestamp from Unix seconds.
pub fn timestamp(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// The wire form of a token; `secret` is set only by Create and Rotate.
pub fn api_token(token: ApiToken, secret: Option<String>) -> pb::ApiToken {
    pb::ApiToken {
        created_at: Some(timestamp(token.created_at)),
        description: token.description,
        id: token.id.as_str().to_owned(),
        name: token.name,
        short_token: token.short_token,
        start_at: Some(timestamp(token.start_at)),
        r#type: token_type_to_pb(token.token_type) as i32,
        updated_at: Some(timestamp(token.updated_at)),
        created_by: Some((&token.created_by).into()),
        end_at: token.end_at.map(timestamp),
        expiry_period_in_days: token.expiry_days,
        last_used_at: token.last_used_at.map(timestamp),
        roles: token.roles.iter().map(Into::into).collect(),
        token: secret.unwrap_or_default(),
        updated_by: Some((&token.updated_by).into()),
        kind: kind_to_pb(token.kind) as i32,
        last_rotated_at: token.last_rotated_at.map(timestamp),
    }
}

/// The answer of Create and Rotate: the token with its new secret.
pub fn issued(issued: Issued) -> pb::ApiToken {
    api_token(issued.token, Some(issued.secret.into_exposed()))
}

/// A page of List.
pub fn listing(listing: Listing) -> pb::ListApiTokensResponse {
    pb::ListApiTokensResponse {
        limit: i32::from(listing.page.limit()),
        offset: i32::try_from(listing.page.offset()).unwrap_or(i32::MAX),
        tokens: listing
            .tokens
            .into_iter()
            .map(|t| api_token(t, None))
            .collect(),
        total_count: i32::try_from(listing.total).unwrap_or(i32::MAX),
    }
}

/// A page of ListAuditEvents.
pub fn events(events: Events) -> pb::ListAuditEventsResponse {
    pb::ListAuditEventsResponse {
        limit: i32::from(events.page.limit()),
        offset: i32::try_from(events.page.offset()).unwrap_or(i32::MAX),
        events: events.events.into_iter().map(audit_event).collect(),
        total_count: i32::try_from(events.total).unwrap_or(i32::MAX),
    }
}

/// The Dynatrace-shaped metadata Lookup returns. Its `id` is
/// `<prefix>.<public>`; `scopes` come from the permission matrix.
pub fn metadata(lookup: Lookup, prefix: &TokenPrefix) -> pb::ApiTokenMetadata {
    let token = &lookup.found;
    pb::ApiTokenMetadata {
        last_used_date: lookup.last_used_at.map(timestamp),
        last_used_ip_address: lookup.last_used_ip.unwrap_or_default(),
        expiration_date: token.end_at.map(timestamp),
        personal_access_token: false,
        name: token.name.to_string(),
        id: format!("{}.{}", prefix.as_str(), token.id),
        owner: token.owner.to_string(),
        creation_date: Some(timestamp(token.created_at)),
        enabled: token.enabled,
        scopes: lookup.scopes,
        organization_id: token.organization_id.as_str().to_owned(),
        start_date: Some(timestamp(token.start_at)),
    }
}

impl From<&Subject> for pb::BasicSubjectProfile {
    fn from(subject: &Subject) -> Self {
        let subject_type = match subject.subject_type {
            SubjectType::User => PbSubjectType::User,
            SubjectType::ServiceKey => PbSubjectType::Servicekey,
        };
        Self {
            id: subject.id.clone(),
            api_token_name: subject.api_token_name.clone(),
            avatar_url: subject.avatar_url.clone(),
            full_name: subject.full_name.clone(),
            subject_type: subject_type as i32,
            username: subject.username.clone(),
        }
    }
}

impl From<&RoleBinding> for pb::ApiTokenRole {
    fn from(binding: &RoleBinding) -> Self {
        Self {
            entity_id: binding.entity_id().as_str().to_owned(),
            entity_type: entity_type_to_pb(binding.entity_type()) as i32,
            role: binding.role().as_str().to_owned(),
            deployment_id: binding
                .deployment_id()
                .map(|d| d.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

fn token_type_to_pb(t: TokenType) -> PbType {
    match t {
        TokenType::Organization => PbType::Organization,
        TokenType::Workspace => PbType::Workspace,
        TokenType::Deployment => PbType::Deployment,
    }
}

fn kind_to_pb(k: TokenKind) -> PbKind {
    match k {
        TokenKind::Standard => PbKind::Standard,
        TokenKind::DirectAccess => PbKind::DirectAccess,
    }
}

fn entity_type_to_pb(t: EntityType) -> PbEntityType {
    match t {
        EntityType::Organization => PbEntityType::Organization,
        EntityType::Workspace => PbEntityType::Workspace,
        EntityType::Deployment => PbEntityType::Deployment,
        EntityType::Dag => PbEntityType::Dag,
        EntityType::DagTag => PbEntityType::DagTag,
    }
}

/// The wire form of an audit event.
fn audit_event(event: AuditEvent) -> pb::AuditEvent {
    let action = match event.action {
        AuditAction::Create => PbAction::Create,
        AuditAction::Update => PbAction::Update,
        AuditAction::UpdateRoles => PbAction::UpdateRoles,
        AuditAction::Rotate => PbAction::Rotate,
        AuditAction::Delete => PbAction::Delete,
        AuditAction::AuthenticationFailed => PbAction::AuthenticationFailed,
    };
    pb::AuditEvent {
        id: event.id.to_string(),
        action: action as i32,
        token_id: event.token_id.as_str().to_owned(),
        actor: event.actor.as_ref().map(Into::into),
        ip_address: event.ip.unwrap_or_default(),
        occurred_at: Some(timestamp(event.occurred_at)),
        detail: event.detail,
        count: event.count,
    }
}
