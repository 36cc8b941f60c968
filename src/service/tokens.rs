//! The mutations: Create, Update, UpdateRoles, Rotate, Delete. Each
//! authorizes, writes in one transaction with its audit event, then drops
//! the token from the credential cache, whatever the outcome (a failure
//! after commit still changed it).

use super::mint::{IssueError, issue, mint_secret};
use super::{Caller, Error, TOKEN, Tokend, audit_text};
use crate::domain::audit::Actor;
use crate::domain::ids::{OrganizationId, TokenId};
use crate::domain::permission::{Action, Denied, TokenScope};
use crate::domain::role::RoleBinding;
use crate::domain::secret::RevealedSecret;
use crate::domain::subject::Subject;
use crate::domain::time::{now_millis, now_seconds};
use crate::domain::token::{ApiToken, GracePeriod, NewToken, RoleSet, TokenUpdate};
use crate::store::{Mutated, RoleGuard, Rotation, StoreError};

/// What the answers of Create and Rotate carry: the token and its new
/// secret, shown this once.
#[derive(Debug)]
pub struct Issued {
    /// The token as stored.
    pub token: ApiToken,
    /// Its new secret.
    pub secret: RevealedSecret,
}

impl Tokend {
    /// CreateApiToken in `org`. The request is parsed (`parse`, given the
    /// time it is created at) only once the caller is known to belong to
    /// `org`, so other organizations learn nothing from validation.
    pub async fn create(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        parse: impl FnOnce(i64) -> Result<NewToken, Error>,
    ) -> Result<Issued, Error> {
        if &caller.principal.organization != org {
            return Err(Error::denied(Denied::NotVisible, "organization", "create"));
        }
        let now = now_seconds();
        let new = parse(now)?;
        let scope = TokenScope {
            token_type: new.token_type,
            entity_id: &new.entity_id,
        };
        caller
            .principal
            .authorize_create(&new.organization_id, scope)
            .map_err(|denied| Error::denied(denied, TOKEN, "create"))?;
        check_grants(caller, std::slice::from_ref(&new.role))?;
        let (token, secret) = issue(
            &self.store,
            &self.prefix,
            &new,
            &caller.subject(),
            caller.ip.as_deref(),
            now,
        )
        .await
        .map_err(|err| match err {
            IssueError::Store(store) => name_conflict(store),
            IssueError::Random(e) => Error::Internal(e.to_string()),
        })?;
        // Usable here at once; other replicas learn of it through the feed.
        self.auth.cache().live().note(&token.id);
        tracing::info!(token_id = %token.id, "API token created");
        Ok(Issued { token, secret })
    }

    /// UpdateApiToken: present fields replace their values (`parse` runs
    /// once the caller may update the token). Re-enabling hands a secret
    /// back out: only a caller that could grant every role the token holds
    /// may do it. Disabling, renaming and describing hand out nothing.
    pub async fn update(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        id: &TokenId,
        parse: impl FnOnce() -> Result<TokenUpdate, Error>,
    ) -> Result<ApiToken, Error> {
        let head = self
            .authorized_head(caller, org, id, Action::Update)
            .await?;
        let update = parse()?;
        let subject = caller.subject();
        let grants = |roles: &[RoleBinding]| ungrantable(caller, roles);
        let guard: Option<RoleGuard<'_>> = (update.enabled == Some(true)).then_some(&grants);
        let detail = audit_text::updated(&head.name, &update);
        let result = self
            .store
            .update_token(
                &head,
                &update,
                &actor(caller, &subject, now_seconds()),
                guard,
                detail,
            )
            .await;
        self.auth.cache().invalidate_token(&head.id);
        let updated = mutated(result.map_err(name_conflict)?)?;
        tracing::info!(token_id = %head.id, "API token updated");
        Ok(updated)
    }

    /// UpdateApiTokenRoles: replaces the whole role set, atomically. Every
    /// role of the new set must be one the caller may grant.
    pub async fn update_roles(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        id: &TokenId,
        parse: impl FnOnce() -> Result<Vec<RoleBinding>, Error>,
    ) -> Result<ApiToken, Error> {
        let head = self
            .authorized_head(caller, org, id, Action::UpdateRoles)
            .await?;
        let roles = RoleSet::parse(org, head.token_type, &head.entity_id, parse()?)?;
        check_grants(caller, roles.bindings())?;
        let subject = caller.subject();
        let detail = audit_text::roles_set(roles.bindings());
        let result = self
            .store
            .replace_roles(
                &head,
                &roles,
                &actor(caller, &subject, now_seconds()),
                detail,
            )
            .await;
        self.auth.cache().invalidate_token(&head.id);
        let updated = result?.ok_or(Error::NotFound(TOKEN))?;
        tracing::info!(token_id = %head.id, "API token roles replaced");
        Ok(updated)
    }

    /// RotateApiToken: a new secret, same id. The new secret carries every
    /// role the token holds: the caller must be able to grant each of them,
    /// as for Create.
    pub async fn rotate(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        id: &TokenId,
        parse: impl FnOnce() -> Result<GracePeriod, Error>,
    ) -> Result<Issued, Error> {
        let head = self
            .authorized_head(caller, org, id, Action::Rotate)
            .await?;
        let grace = parse()?;
        let secret = mint_secret(head.id.clone()).map_err(|e| Error::Internal(e.to_string()))?;
        let short_token = secret.short_token(&self.prefix);
        let subject = caller.subject();
        let grants = |roles: &[RoleBinding]| ungrantable(caller, roles);
        let now_ms = i64::try_from(now_millis()).unwrap_or(i64::MAX);
        let grace_end_ms = now_ms.saturating_add(grace.seconds().saturating_mul(1000));
        let detail = audit_text::rotated(&short_token, grace, grace_end_ms);
        let result = self
            .store
            .rotate_secret(
                &head,
                &Rotation {
                    digest: &secret.digest(),
                    short_token: &short_token,
                    grace,
                    now_ms,
                    detail: &detail,
                },
                &actor(caller, &subject, now_ms / 1000),
                &grants,
            )
            .await;
        self.auth.cache().invalidate_token(&head.id);
        let token = mutated(result?)?;
        tracing::info!(token_id = %head.id, grace_seconds = grace.seconds(), "API token rotated");
        Ok(Issued {
            token,
            secret: secret.reveal(&self.prefix),
        })
    }

    /// DeleteApiToken: its secrets stop working at once. A revocation: it
    /// needs only `delete` on the token, whatever roles the token holds.
    pub async fn delete(
        &self,
        caller: &Caller,
        org: &OrganizationId,
        id: &TokenId,
    ) -> Result<(), Error> {
        let head = self
            .authorized_head(caller, org, id, Action::Delete)
            .await?;
        let subject = caller.subject();
        let detail = audit_text::deleted(&head.name);
        let result = self
            .store
            .delete_token(&head, &actor(caller, &subject, now_seconds()), detail)
            .await;
        self.auth.cache().invalidate_token(&head.id);
        if !result? {
            return Err(Error::NotFound(TOKEN));
        }
        tracing::info!(token_id = %head.id, "API token deleted");
        Ok(())
    }
}

/// The caller as the actor of a mutation at `at`.
fn actor<'a>(caller: &'a Caller, subject: &'a Subject, at: i64) -> Actor<'a> {
    Actor {
        subject,
        ip: caller.ip.as_deref(),
        at,
    }
}

/// Refuses any binding the caller may not grant ("never above its own").
fn check_grants(caller: &Caller, bindings: &[RoleBinding]) -> Result<(), Error> {
    match ungrantable(caller, bindings) {
        None => Ok(()),
        Some(b) => Err(may_not_grant(&b)),
    }
}

/// The first of `bindings` the caller may not grant.
fn ungrantable(caller: &Caller, bindings: &[RoleBinding]) -> Option<RoleBinding> {
    caller.principal.ungrantable(bindings).cloned()
}

fn may_not_grant(b: &RoleBinding) -> Error {
    Error::PermissionDenied(format!(
        "the caller may not grant {} on {} {}",
        b.role(),
        b.entity_type(),
        b.entity_id()
    ))
}

/// The token after a guarded mutation, or why there is none.
fn mutated(outcome: Mutated<ApiToken>) -> Result<ApiToken, Error> {
    match outcome {
        Mutated::Done(token) => Ok(token),
        Mutated::Gone => Err(Error::NotFound(TOKEN)),
        Mutated::Refused(binding) => Err(may_not_grant(&binding)),
    }
}

/// A uniqueness conflict on write is a duplicate name in the token's scope.
fn name_conflict(err: StoreError) -> Error {
    match err {
        StoreError::Conflict(_) => Error::AlreadyExists(
            "an API token with this name already exists in this scope".to_owned(),
        ),
        other => other.into(),
    }
}
