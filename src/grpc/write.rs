//! Create, Update, UpdateRoles, Rotate and Delete.

use tonic::Request;

use super::AppState;
use super::access::{TOKEN, actor, authorized_head, organization};
use super::convert::{self, kind_from_pb, seconds_from_pb, token_type_from_pb};
use super::error::ApiError;
use super::validate;
use crate::domain::Violations;
use crate::domain::permission::{self, Action, Denied, TokenScope};
use crate::domain::role::RoleBinding;
use crate::domain::secret::TokenSecret;
use crate::domain::time::{now_millis, now_seconds};
use crate::domain::token::{ApiToken, CreateTokenInput, NewToken};
use crate::pb;
use crate::service::authenticate::Caller;
use crate::service::mint::{IssueError, issue};
use crate::store::{Mutated, RoleGuard, Rotation, StoreError};

/// CreateApiToken: the response carries the secret, once.
pub(super) async fn create(
    state: &AppState,
    request: Request<pb::CreateApiTokenRequest>,
) -> Result<pb::ApiToken, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let org = organization(&req.organization_id)?;
    if caller.organization_id != org {
        // Checked before the body, so other organizations learn nothing.
        return Err(ApiError::denied(
            Denied::NotVisible,
            "organization",
            "create",
        ));
    }
    let now = now_seconds();
    let new = parse_create(&req, org, now)?;
    let scope = TokenScope {
        token_type: new.token_type,
        entity_id: &new.entity_id,
    };
    permission::authorize_create(
        &caller.organization_id,
        &caller.roles,
        &new.organization_id,
        scope,
    )
    .map_err(|denied| ApiError::denied(denied, TOKEN, "create"))?;
    check_grants(&caller, std::slice::from_ref(&new.role))?;
    let subject = caller.subject();
    let (created, secret) = issue(
        &state.store,
        state.auth.prefix(),
        &new,
        &subject,
        caller.ip.as_deref(),
        now,
    )
    .await
    .map_err(|err| match err {
        IssueError::Store(store) => name_conflict(store),
        IssueError::Random(e) => ApiError::Internal(e.to_string()),
    })?;
    tracing::info!(token_id = %created.id, "API token created");
    Ok(convert::api_token(created, Some(secret.into_exposed())))
}

pub(super) fn parse_create(
    req: &pb::CreateApiTokenRequest,
    org: crate::domain::ids::OrganizationId,
    now: i64,
) -> Result<NewToken, ApiError> {
    let mut v = Violations::default();
    let token_type = v.check(token_type_from_pb("type", req.r#type)).flatten();
    let kind = v.check(kind_from_pb("kind", req.kind)).flatten();
    let start_at = v
        .check(seconds_from_pb("startAt", req.start_at.as_ref()))
        .flatten();
    let input = CreateTokenInput {
        name: &req.name,
        description: &req.description,
        token_type,
        role: &req.role,
        entity_id: &req.entity_id,
        expiry_days: req.token_expiry_period_in_days,
        kind,
        start_at,
    };
    match NewToken::parse(org, &input, now) {
        Ok(new) if v.is_empty() => Ok(new),
        Ok(_) => Err(v.into_vec().into()),
        Err(more) => {
            // An undecodable enum is already reported; NewToken sees it as
            // unset and would report the same field again.
            let mut all = v.into_vec();
            for violation in more {
                if !all.iter().any(|v| v.field == violation.field) {
                    all.push(violation);
                }
            }
            Err(all.into())
        }
    }
}

/// UpdateApiToken: present fields replace their values.
pub(super) async fn update(
    state: &AppState,
    request: Request<pb::UpdateApiTokenRequest>,
) -> Result<pb::ApiToken, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let (_, head) = authorized_head(
        state,
        &caller,
        &req.organization_id,
        &req.token_id,
        Action::Update,
    )
    .await?;
    let update = validate::update(&req)?;
    let subject = caller.subject();
    // Re-enabling hands a secret back out: only a caller that could grant
    // every role the token holds may do it. Disabling, renaming and
    // describing hand out nothing.
    let grants = |roles: &[RoleBinding]| ungrantable(&caller, roles);
    let guard: Option<RoleGuard<'_>> = (update.enabled == Some(true)).then_some(&grants);
    let result = state
        .store
        .update_token(
            &head,
            &update,
            &actor(&caller, &subject, now_seconds()),
            guard,
        )
        .await;
    // Invalidate whatever the outcome: a failure after commit still changed it.
    state.auth.cache().invalidate_token(&head.id);
    let updated = mutated(result.map_err(name_conflict)?)?;
    tracing::info!(token_id = %head.id, "API token updated");
    Ok(convert::api_token(updated, None))
}

/// UpdateApiTokenRoles: replaces the whole role set, atomically.
pub(super) async fn update_roles(
    state: &AppState,
    request: Request<pb::UpdateApiTokenRolesRequest>,
) -> Result<pb::ApiToken, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let (org, head) = authorized_head(
        state,
        &caller,
        &req.organization_id,
        &req.token_id,
        Action::UpdateRoles,
    )
    .await?;
    let roles = validate::roles(&req, &org, head.token_type, &head.entity_id)?;
    check_grants(&caller, roles.bindings())?;
    let subject = caller.subject();
    let result = state
        .store
        .replace_roles(&head, &roles, &actor(&caller, &subject, now_seconds()))
        .await;
    state.auth.cache().invalidate_token(&head.id);
    let updated = result?.ok_or(ApiError::NotFound(TOKEN))?;
    tracing::info!(token_id = %head.id, "API token roles replaced");
    Ok(convert::api_token(updated, None))
}

/// RotateApiToken: a new secret, same id; the response carries it, once.
pub(super) async fn rotate(
    state: &AppState,
    request: Request<pb::RotateApiTokenRequest>,
) -> Result<pb::ApiToken, ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let (_, head) = authorized_head(
        state,
        &caller,
        &req.organization_id,
        &req.token_id,
        Action::Rotate,
    )
    .await?;
    let grace = validate::rotate(&req)?;
    let secret = TokenSecret::generate(head.id.clone())
        .map_err(|e| ApiError::Internal(format!("OS random source failed: {e}")))?;
    let prefix = state.auth.prefix();
    let subject = caller.subject();
    // The new secret carries every role the token holds: the caller must be
    // able to grant each of them, as for Create.
    let grants = |roles: &[RoleBinding]| ungrantable(&caller, roles);
    let now_ms = i64::try_from(now_millis()).unwrap_or(i64::MAX);
    let result = state
        .store
        .rotate_secret(
            &head,
            &Rotation {
                digest: &secret.digest(),
                short_token: &secret.short_token(prefix),
                grace,
                now_ms,
            },
            &actor(&caller, &subject, now_ms / 1000),
            &grants,
        )
        .await;
    state.auth.cache().invalidate_token(&head.id);
    let rotated = mutated(result?)?;
    tracing::info!(token_id = %head.id, grace_seconds = grace.seconds(), "API token rotated");
    Ok(convert::api_token(
        rotated,
        Some(secret.reveal(prefix).into_exposed()),
    ))
}

/// DeleteApiToken: its secrets stop working at once.
pub(super) async fn delete(
    state: &AppState,
    request: Request<pb::DeleteApiTokenRequest>,
) -> Result<(), ApiError> {
    let caller = state.auth.authenticate(&request).await?;
    let req = request.into_inner();
    let (_, head) = authorized_head(
        state,
        &caller,
        &req.organization_id,
        &req.token_id,
        Action::Delete,
    )
    .await?;
    let subject = caller.subject();
    let result = state
        .store
        .delete_token(&head, &actor(&caller, &subject, now_seconds()))
        .await;
    state.auth.cache().invalidate_token(&head.id);
    if !result? {
        return Err(ApiError::NotFound(TOKEN));
    }
    tracing::info!(token_id = %head.id, "API token deleted");
    Ok(())
}

/// Refuses any binding the caller may not grant ("never above its own").
fn check_grants(caller: &Caller, bindings: &[RoleBinding]) -> Result<(), ApiError> {
    match ungrantable(caller, bindings) {
        None => Ok(()),
        Some(b) => Err(may_not_grant(&b)),
    }
}

/// The first of `bindings` the caller may not grant.
fn ungrantable(caller: &Caller, bindings: &[RoleBinding]) -> Option<RoleBinding> {
    permission::ungrantable(&caller.roles, bindings).cloned()
}

fn may_not_grant(b: &RoleBinding) -> ApiError {
    ApiError::PermissionDenied(format!(
        "the caller may not grant {} on {} {}",
        b.role(),
        b.entity_type(),
        b.entity_id()
    ))
}

/// The token after a guarded mutation, or why there is none.
fn mutated(outcome: Mutated<ApiToken>) -> Result<ApiToken, ApiError> {
    match outcome {
        Mutated::Done(token) => Ok(token),
        Mutated::Gone => Err(ApiError::NotFound(TOKEN)),
        Mutated::Refused(binding) => Err(may_not_grant(&binding)),
    }
}

/// A uniqueness conflict on write is a duplicate name in the token's scope.
fn name_conflict(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(_) => ApiError::AlreadyExists(
            "an API token with this name already exists in this scope".to_owned(),
        ),
        other => other.into(),
    }
}
