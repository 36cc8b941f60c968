//! Protobuf <-> domain conversion at the API edge. Decoding a request is
//! where validation starts; encoding a response never fails.

use prost_types::Timestamp;

use crate::domain::FieldViolation;
use crate::domain::audit::{AuditAction, AuditEvent};
use crate::domain::ids::EntityId;
use crate::domain::role::{EntityType, Role, RoleBinding};
use crate::domain::secret::TokenPrefix;
use crate::domain::subject::{Subject, SubjectType};
use crate::domain::token::{ApiToken, TokenKind, TokenType};
use crate::pb;
use crate::pb::api_token::{Kind as PbKind, Type as PbType};
use crate::pb::api_token_role::EntityType as PbEntityType;
use crate::pb::audit_event::Action as PbAction;
use crate::pb::basic_subject_profile::SubjectType as PbSubjectType;

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
    }
}

/// The Dynatrace-shaped metadata Lookup returns. Its `id` is
/// `<prefix>.<public>`; `scopes` come from the permission matrix.
pub fn metadata(
    token: &ApiToken,
    prefix: &TokenPrefix,
    scopes: Vec<String>,
) -> pb::ApiTokenMetadata {
    pb::ApiTokenMetadata {
        last_used_date: token.last_used_at.map(timestamp),
        last_used_ip_address: token.last_used_ip.clone().unwrap_or_default(),
        expiration_date: token.end_at.map(timestamp),
        personal_access_token: false,
        name: token.name.clone(),
        id: format!("{}.{}", prefix.as_str(), token.id),
        owner: token.created_by.display_name().to_owned(),
        creation_date: Some(timestamp(token.created_at)),
        enabled: token.enabled,
        scopes,
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

/// Decodes a token type; `None` when unset.
pub fn token_type_from_pb(field: &str, value: i32) -> Result<Option<TokenType>, FieldViolation> {
    match PbType::try_from(value) {
        Ok(PbType::Unspecified) => Ok(None),
        Ok(PbType::Organization) => Ok(Some(TokenType::Organization)),
        Ok(PbType::Workspace) => Ok(Some(TokenType::Workspace)),
        Ok(PbType::Deployment) => Ok(Some(TokenType::Deployment)),
        Err(_) => Err(unknown_enum(field)),
    }
}

/// Decodes a token kind; `None` when unset.
pub fn kind_from_pb(field: &str, value: i32) -> Result<Option<TokenKind>, FieldViolation> {
    match PbKind::try_from(value) {
        Ok(PbKind::Unspecified) => Ok(None),
        Ok(PbKind::Standard) => Ok(Some(TokenKind::Standard)),
        Ok(PbKind::DirectAccess) => Ok(Some(TokenKind::DirectAccess)),
        Err(_) => Err(unknown_enum(field)),
    }
}

fn unknown_enum(field: &str) -> FieldViolation {
    FieldViolation::new(field, "is not a known value")
}

/// Decodes an optional timestamp to whole Unix seconds (sub-second parts are
/// dropped: the contract's timestamps have second precision).
pub fn seconds_from_pb(
    field: &str,
    value: Option<&Timestamp>,
) -> Result<Option<i64>, FieldViolation> {
    match value {
        None => Ok(None),
        Some(t) if (0..1_000_000_000).contains(&t.nanos) => Ok(Some(t.seconds)),
        Some(_) => Err(FieldViolation::new(field, "is not a valid timestamp")),
    }
}
/// Decodes an entity type; unset is a violation.
pub fn entity_type_from_pb(field: &str, value: i32) -> Result<EntityType, FieldViolation> {
    match PbEntityType::try_from(value) {
        Ok(PbEntityType::Unspecified) => Err(FieldViolation::new(
            field,
            "is required: ORGANIZATION, WORKSPACE, DEPLOYMENT, DAG or DAG_TAG",
        )),
        Ok(PbEntityType::Organization) => Ok(EntityType::Organization),
        Ok(PbEntityType::Workspace) => Ok(EntityType::Workspace),
        Ok(PbEntityType::Deployment) => Ok(EntityType::Deployment),
        Ok(PbEntityType::Dag) => Ok(EntityType::Dag),
        Ok(PbEntityType::DagTag) => Ok(EntityType::DagTag),
        Err(_) => Err(unknown_enum(field)),
    }
}

/// Decodes the role bindings of a request, naming each violation
/// `roles[i].field`.
pub fn roles_from_pb(roles: &[pb::ApiTokenRole]) -> Result<Vec<RoleBinding>, Vec<FieldViolation>> {
    let mut v = crate::domain::Violations::default();
    let mut bindings = Vec::with_capacity(roles.len());
    for (i, role) in roles.iter().enumerate() {
        let field = |name: &str| format!("roles[{i}].{name}");
        let entity_type = v.check(entity_type_from_pb(&field("entityType"), role.entity_type));
        let entity_id = v.check(EntityId::parse(&field("entityId"), &role.entity_id));
        let role_name = v.check(Role::parse(&field("role"), &role.role));
        let deployment_id = v.check(EntityId::parse_optional(
            &field("deploymentId"),
            &role.deployment_id,
        ));
        if let (Some(t), Some(e), Some(r), Some(d)) =
            (entity_type, entity_id, role_name, deployment_id)
            && let Some(binding) = v.check(RoleBinding::new(&format!("roles[{i}]"), t, e, r, d))
        {
            bindings.push(binding);
        }
    }
    if v.is_empty() {
        Ok(bindings)
    } else {
        Err(v.into_vec())
    }
}

/// The wire form of an audit event.
pub fn audit_event(event: AuditEvent) -> pb::AuditEvent {
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
