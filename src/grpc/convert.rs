//! Domain -> protobuf: the wire form of answers. Encoding never fails
//! (requests go the other way in `validate`).

use prost_types::Timestamp;

use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::role::{EntityType, RoleBinding};
use crate::domain::secret::TokenPrefix;
use crate::domain::subject::{Subject, SubjectType};
use crate::domain::time::rfc3339_millis;
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
        token: secret,
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
/// `<prefix>.<public>`; `scopes` and `resourceScopes` come from the
/// permission matrix; dates are Dynatrace's `yyyy-MM-ddTHH:mm:ss.SSSZ`.
pub fn metadata(lookup: Lookup, prefix: &TokenPrefix) -> pb::ApiTokenMetadata {
    let token = &lookup.found;
    pb::ApiTokenMetadata {
        last_used_date: lookup.last_used_at.map(dynatrace_date),
        last_used_ip_address: lookup.last_used_ip,
        expiration_date: token.end_at.map(dynatrace_date),
        personal_access_token: false,
        name: token.name.to_string(),
        id: format!("{}.{}", prefix.as_str(), token.id),
        owner: token.owner.to_string(),
        creation_date: rfc3339_millis(token.created_at.saturating_mul(1000)),
        modified_date: rfc3339_millis(token.updated_at.saturating_mul(1000)),
        enabled: token.enabled,
        scopes: lookup.scopes.into_iter().map(str::to_owned).collect(),
        organization_id: token.organization_id.as_str().to_owned(),
        start_date: rfc3339_millis(token.start_at.saturating_mul(1000)),
        resource_scopes: lookup.resource_scopes,
    }
}

/// Unix seconds in Dynatrace's date form, `2020-11-12T08:15:30.000Z`.
fn dynatrace_date(seconds: i64) -> String {
    rfc3339_millis(seconds.saturating_mul(1000))
}

/// UpdateApiTokenRoles' answer: the token's roles as Astronomer's
/// SubjectRoles, grouped by the kind of entity, in the token's order.
pub fn subject_roles(token: &ApiToken) -> pb::SubjectRoles {
    let mut out = pb::SubjectRoles::default();
    for binding in &token.roles {
        let id = binding.entity_id().as_str().to_owned();
        let role = binding.role().as_str().to_owned();
        let deployment = || {
            binding
                .deployment_id()
                .map(|d| d.as_str().to_owned())
                .unwrap_or_default()
        };
        match binding.entity_type() {
            // A token holds at most one organization role (RoleSet).
            EntityType::Organization => out.organization_role = Some(role),
            EntityType::Workspace => out.workspace_roles.push(pb::WorkspaceRole {
                workspace_id: id,
                role,
            }),
            EntityType::Deployment => out.deployment_roles.push(pb::DeploymentRole {
                deployment_id: id,
                role,
            }),
            EntityType::Dag => out.dag_roles.push(pb::DagRole {
                dag_id: Some(id),
                dag_tag: None,
                deployment_id: deployment(),
                role,
            }),
            EntityType::DagTag => out.dag_roles.push(pb::DagRole {
                dag_id: None,
                dag_tag: Some(id),
                deployment_id: deployment(),
                role,
            }),
        }
    }
    out
}

impl From<&Subject> for pb::BasicSubjectProfile {
    fn from(subject: &Subject) -> Self {
        let subject_type = match subject.subject_type {
            SubjectType::User => PbSubjectType::User,
            SubjectType::ServiceKey => PbSubjectType::Servicekey,
        };
        // Each type's own fields only, as Astronomer returns them: a
        // SERVICEKEY has no avatar, full name or username, a USER no token
        // name; a user's optional avatar and full name are absent when empty.
        let present = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        let user = subject.subject_type == SubjectType::User;
        Self {
            id: subject.id.clone(),
            subject_type: subject_type as i32,
            api_token_name: (!user).then(|| subject.api_token_name.clone()),
            avatar_url: user.then(|| present(&subject.avatar_url)).flatten(),
            full_name: user.then(|| present(&subject.full_name)).flatten(),
            username: user.then(|| subject.username.clone()),
        }
    }
}

impl From<&RoleBinding> for pb::ApiTokenRole {
    fn from(binding: &RoleBinding) -> Self {
        Self {
            entity_id: binding.entity_id().as_str().to_owned(),
            entity_type: entity_type_to_pb(binding.entity_type()) as i32,
            role: binding.role().as_str().to_owned(),
            deployment_id: binding.deployment_id().map(|d| d.as_str().to_owned()),
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
