//! Rows to domain types and back. Stored strings were written from domain
//! enums, so a value that does not parse back means a corrupt row.

use sea_orm::ActiveValue::Set;

use super::entity::{api_token, api_token_role, subject};
use super::error::StoreError;
use crate::domain::ids::{EntityId, OrganizationId, TokenId};
use crate::domain::role::{EntityType, Role, RoleBinding};
use crate::domain::subject::{Subject, SubjectType};
use crate::domain::token::{ApiToken, TokenKind, TokenType};

fn corrupt(table: &str, column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{table}.{column} holds {value:?}"))
}

/// A role binding from its row.
pub(super) fn role_from_row(row: &api_token_role::Model) -> Result<RoleBinding, StoreError> {
    let entity_type = EntityType::from_name(&row.entity_type)
        .ok_or_else(|| corrupt("api_token_roles", "entity_type", &row.entity_type))?;
    let role =
        Role::from_name(&row.role).ok_or_else(|| corrupt("api_token_roles", "role", &row.role))?;
    let deployment_id =
        (!row.deployment_id.is_empty()).then(|| EntityId::from_stored(row.deployment_id.clone()));
    Ok(RoleBinding::from_stored(
        entity_type,
        EntityId::from_stored(row.entity_id.clone()),
        role,
        deployment_id,
    ))
}

/// The row for one binding of `token_id`.
pub(super) fn role_to_row(
    token_id: &TokenId,
    organization_id: &OrganizationId,
    binding: &RoleBinding,
) -> api_token_role::ActiveModel {
    api_token_role::ActiveModel {
        token_id: Set(token_id.as_str().to_owned()),
        entity_type: Set(binding.entity_type().as_str().to_owned()),
        entity_id: Set(binding.entity_id().as_str().to_owned()),
        deployment_id: Set(binding
            .deployment_id()
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default()),
        organization_id: Set(organization_id.as_str().to_owned()),
        role: Set(binding.role().as_str().to_owned()),
    }
}

/// A subject from its row.
pub(super) fn subject_from_row(row: subject::Model) -> Result<Subject, StoreError> {
    let subject_type = SubjectType::from_name(&row.subject_type)
        .ok_or_else(|| corrupt("subjects", "subject_type", &row.subject_type))?;
    Ok(Subject {
        id: row.id,
        subject_type,
        username: row.username,
        full_name: row.full_name,
        avatar_url: row.avatar_url,
        api_token_name: row.api_token_name,
    })
}

/// The row for a subject.
pub(super) fn subject_to_row(subject: &Subject) -> subject::ActiveModel {
    subject::ActiveModel {
        id: Set(subject.id.clone()),
        subject_type: Set(subject.subject_type.as_str().to_owned()),
        username: Set(subject.username.clone()),
        full_name: Set(subject.full_name.clone()),
        avatar_url: Set(subject.avatar_url.clone()),
        api_token_name: Set(subject.api_token_name.clone()),
    }
}

/// A token from its row, its bindings and its two subjects.
pub(super) fn token_from_row(
    row: api_token::Model,
    roles: Vec<RoleBinding>,
    created_by: Subject,
    updated_by: Subject,
) -> Result<ApiToken, StoreError> {
    let token_type = TokenType::from_name(&row.token_type)
        .ok_or_else(|| corrupt("api_tokens", "token_type", &row.token_type))?;
    let kind =
        TokenKind::from_name(&row.kind).ok_or_else(|| corrupt("api_tokens", "kind", &row.kind))?;
    let organization_id = OrganizationId::parse("organization_id", &row.organization_id)
        .map_err(|_| corrupt("api_tokens", "organization_id", &row.organization_id))?;
    Ok(ApiToken {
        id: TokenId::from_stored(row.id),
        organization_id,
        name: row.name,
        description: row.description,
        token_type,
        entity_id: EntityId::from_stored(row.entity_id),
        kind,
        short_token: row.short_token,
        enabled: row.enabled,
        start_at: row.start_at,
        end_at: row.end_at,
        expiry_days: row.expiry_days,
        created_at: row.created_at,
        updated_at: row.updated_at,
        created_by,
        updated_by,
        last_used_at: row.last_used_at,
        last_used_ip: row.last_used_ip,
        last_rotated_at: row.last_rotated_at,
        roles,
    })
}
