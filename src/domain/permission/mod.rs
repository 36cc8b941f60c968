//! Authorization: what a caller's roles let it do to tokens. The caller is
//! a [`Principal`]; every RPC but Lookup asks [`Principal::authorize`] (or
//! [`Principal::authorize_create`]); List asks [`Principal::visibility`];
//! Create and UpdateRoles ask [`Principal::can_grant`]; Rotate and
//! re-enabling ask [`Principal::ungrantable`]. `docs/authorization.md` is
//! generated from these rules (`docs.rs`, test code).
//!
//! tokend does not know which workspace a deployment belongs to, so
//! workspace roles reach WORKSPACE tokens only; DEPLOYMENT tokens are
//! reached by DEPLOYMENT_ADMIN on that deployment and by the organization's
//! owners. Deny is the default.

use std::fmt::Write as _;

use super::ids::{EntityId, OrganizationId};
use super::role::{EntityType, Role, RoleBinding};
use super::token::TokenType;

pub mod route;

#[cfg(test)]
mod docs;

/// Who is asking: the organization of the caller's token and its roles.
/// One value, so an organization cannot be swapped for another argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller's organization.
    pub organization: OrganizationId,
    /// The caller's role bindings.
    pub roles: Vec<RoleBinding>,
}

impl Principal {
    /// May this caller do `action` to an existing token of `org` with scope
    /// `target`? Another organization, or a token the caller cannot read,
    /// is [`Denied::NotVisible`].
    pub fn authorize(
        &self,
        org: &OrganizationId,
        target: TokenScope<'_>,
        action: Action,
    ) -> Result<(), Denied> {
        authorize(&self.organization, &self.roles, org, target, action)
    }

    /// May this caller create a token of scope `target` in `org`? Another
    /// organization is [`Denied::NotVisible`]; too little authority there
    /// is [`Denied::Insufficient`] (nothing exists yet whose existence
    /// could leak).
    pub fn authorize_create(
        &self,
        org: &OrganizationId,
        target: TokenScope<'_>,
    ) -> Result<(), Denied> {
        authorize_create(&self.organization, &self.roles, org, target)
    }

    /// What List shows this caller in `org`. Another organization is
    /// [`Denied::NotVisible`]; a caller that can read no token at all is
    /// [`Denied::Insufficient`].
    pub fn visibility(&self, org: &OrganizationId) -> Result<Visibility, Denied> {
        visibility(&self.organization, &self.roles, org)
    }

    /// May this caller put `binding` on a token (Create, UpdateRoles)?
    pub fn can_grant(&self, binding: &RoleBinding) -> bool {
        can_grant(&self.roles, binding)
    }

    /// The first of `held` (the roles of a token whose secret would be
    /// handed out: by Rotate, or by re-enabling it) this caller could not
    /// grant. A caller may never obtain or revive a secret carrying a role
    /// it could not have put on a token itself; `None` means it may.
    pub fn ungrantable<'a>(&self, held: &'a [RoleBinding]) -> Option<&'a RoleBinding> {
        ungrantable(&self.roles, held)
    }
}

/// Something a caller does to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// GetApiToken, ListApiTokens, ListAuditEvents.
    Read,
    /// CreateApiToken.
    Create,
    /// UpdateApiToken (name, description, enabled).
    Update,
    /// UpdateApiTokenRoles.
    UpdateRoles,
    /// RotateApiToken.
    Rotate,
    /// DeleteApiToken.
    Delete,
}

impl Action {
    /// Every action, in the order the matrix lists them.
    pub const ALL: [Self; 6] = [
        Self::Read,
        Self::Create,
        Self::Update,
        Self::UpdateRoles,
        Self::Rotate,
        Self::Delete,
    ];

    /// A short lowercase name for messages and the matrix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Update => "update",
            Self::UpdateRoles => "update roles",
            Self::Rotate => "rotate",
            Self::Delete => "delete",
        }
    }
}

/// The entity a token belongs to: what authorization is decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenScope<'a> {
    /// The token's type.
    pub token_type: TokenType,
    /// Its organization, workspace or deployment.
    pub entity_id: &'a EntityId,
}

/// Why authorization refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The caller may not even see the target: answer exactly as if it did
    /// not exist (NOT_FOUND).
    NotVisible,
    /// The caller sees the target but may not do this (PERMISSION_DENIED).
    Insufficient,
}

/// How much one binding lets its holder do to one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    None,
    Read,
    Manage,
}

/// The matrix itself: what `binding` allows on a token of `target` scope in
/// the same organization.
fn access(binding: &RoleBinding, target: TokenScope<'_>) -> Access {
    let on_target_entity = binding.entity_type() == target.token_type.entity_type()
        && binding.entity_id() == target.entity_id;
    match binding.role() {
        Role::OrganizationOwner => Access::Manage,
        Role::OrganizationBillingAdmin => Access::Read,
        Role::WorkspaceOwner if on_target_entity => Access::Manage,
        Role::WorkspaceOperator | Role::WorkspaceAuthor | Role::WorkspaceMember
            if on_target_entity =>
        {
            Access::Read
        }
        Role::DeploymentAdmin if on_target_entity => Access::Manage,
        // Astro Observe's roles are about observability, not tokens: token
        // metadata says who may do what, which observing does not need.
        Role::OrganizationObserveAdmin | Role::OrganizationObserveMember => Access::None,
        _ => Access::None,
    }
}

fn best_access(roles: &[RoleBinding], target: TokenScope<'_>) -> Access {
    roles
        .iter()
        .map(|b| access(b, target))
        .max()
        .unwrap_or(Access::None)
}

/// [`Principal::authorize`] for a caller of `caller_org` holding `roles`.
fn authorize(
    caller_org: &OrganizationId,
    roles: &[RoleBinding],
    org: &OrganizationId,
    target: TokenScope<'_>,
    action: Action,
) -> Result<(), Denied> {
    if caller_org != org {
        return Err(Denied::NotVisible);
    }
    match (best_access(roles, target), action) {
        (Access::None, _) => Err(Denied::NotVisible),
        (Access::Read, Action::Read) | (Access::Manage, _) => Ok(()),
        (Access::Read, _) => Err(Denied::Insufficient),
    }
}

/// [`Principal::authorize_create`] for a caller of `caller_org`.
fn authorize_create(
    caller_org: &OrganizationId,
    roles: &[RoleBinding],
    org: &OrganizationId,
    target: TokenScope<'_>,
) -> Result<(), Denied> {
    if caller_org != org {
        return Err(Denied::NotVisible);
    }
    if best_access(roles, target) == Access::Manage {
        Ok(())
    } else {
        Err(Denied::Insufficient)
    }
}

/// May a caller holding `roles` put `binding` on a token (by Create or
/// UpdateRoles)? Never above its own: an organization owner grants anything
/// in its organization; a workspace owner grants workspace roles on its
/// workspace; a deployment admin grants DEPLOYMENT_ADMIN on its deployment
/// and DAG roles inside it.
fn can_grant(roles: &[RoleBinding], binding: &RoleBinding) -> bool {
    roles.iter().any(|held| match held.role() {
        Role::OrganizationOwner => true,
        Role::WorkspaceOwner => {
            binding.entity_type() == EntityType::Workspace
                && binding.entity_id() == held.entity_id()
        }
        Role::DeploymentAdmin => match binding.entity_type() {
            EntityType::Deployment => binding.entity_id() == held.entity_id(),
            EntityType::Dag | EntityType::DagTag => {
                binding.deployment_id() == Some(held.entity_id())
            }
            _ => false,
        },
        _ => false,
    })
}

/// [`Principal::ungrantable`] for a caller holding `roles`.
fn ungrantable<'a>(roles: &[RoleBinding], held: &'a [RoleBinding]) -> Option<&'a RoleBinding> {
    held.iter().find(|b| !can_grant(roles, b))
}

/// Which tokens of its organization a caller may read: what List shows and
/// `totalCount` counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every token of the organization.
    All,
    /// WORKSPACE tokens of these workspaces and DEPLOYMENT tokens of these
    /// deployments.
    Scoped {
        /// Readable workspaces.
        workspaces: Vec<EntityId>,
        /// Readable deployments.
        deployments: Vec<EntityId>,
    },
}

/// [`Principal::visibility`] for a caller of `caller_org` holding `roles`.
fn visibility(
    caller_org: &OrganizationId,
    roles: &[RoleBinding],
    org: &OrganizationId,
) -> Result<Visibility, Denied> {
    if caller_org != org {
        return Err(Denied::NotVisible);
    }
    let org_entity = EntityId::from(org);
    let org_scope = TokenScope {
        token_type: TokenType::Organization,
        entity_id: &org_entity,
    };
    if best_access(roles, org_scope) >= Access::Read {
        return Ok(Visibility::All);
    }
    let readable = |token_type: TokenType, entity: EntityType| -> Vec<EntityId> {
        let mut ids: Vec<EntityId> = roles
            .iter()
            .filter(|b| b.entity_type() == entity)
            .filter(|b| {
                let scope = TokenScope {
                    token_type,
                    entity_id: b.entity_id(),
                };
                access(b, scope) >= Access::Read
            })
            .map(|b| b.entity_id().clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let workspaces = readable(TokenType::Workspace, EntityType::Workspace);
    let deployments = readable(TokenType::Deployment, EntityType::Deployment);
    if workspaces.is_empty() && deployments.is_empty() {
        return Err(Denied::Insufficient);
    }
    Ok(Visibility::Scoped {
        workspaces,
        deployments,
    })
}

/// Lookup's `scopes`: Dynatrace's plain names for what the token may do to
/// every token of its organization (`apiTokens.read`, and `apiTokens.write`
/// when it may also manage them all). Only organization roles grant on
/// ORGANIZATION tokens, and each grants the same on every token of the
/// organization, so the access on the organization's own scope is the
/// access on all of them. Rights that stop at a workspace or deployment
/// appear only in [`scopes`] (Lookup's `resourceScopes`).
pub fn plain_scopes(org: &OrganizationId, roles: &[RoleBinding]) -> Vec<&'static str> {
    let org_entity = EntityId::from(org);
    let everywhere = best_access(
        roles,
        TokenScope {
            token_type: TokenType::Organization,
            entity_id: &org_entity,
        },
    );
    match everywhere {
        Access::None => Vec::new(),
        Access::Read => vec!["apiTokens.read"],
        Access::Manage => vec!["apiTokens.read", "apiTokens.write"],
    }
}

/// Lookup's `resourceScopes`: one `role:<ROLE>:<resource>` entry per
/// binding, then the token permissions the matrix derives from them,
/// `apiTokens.read:<resource>` / `apiTokens.write:<resource>`.
///
/// Every resource names the organization first (entity ids are
/// organization-scoped: two tenants may both have a `ws-1`), as a path of
/// `collection/id` pairs: `organizations/<org>`, then `/workspaces/<id>`,
/// `/deployments/<id>`, and inside a deployment `/dags/<id>` or
/// `/dagTags/<tag>`. Ids cannot contain `/` or `:` (see `EntityId`), so the
/// format parses unambiguously; any other byte an id read back from an older
/// store might hold is percent-encoded.
pub fn scopes(org: &OrganizationId, roles: &[RoleBinding]) -> Vec<String> {
    let mut out: Vec<String> = roles
        .iter()
        .map(|b| format!("role:{}:{}", b.role(), binding_resource(org, b)))
        .collect();
    let org_entity = EntityId::from(org);
    let candidates = std::iter::once((TokenType::Organization, &org_entity)).chain(
        roles.iter().filter_map(|b| match b.entity_type() {
            EntityType::Workspace => Some((TokenType::Workspace, b.entity_id())),
            EntityType::Deployment => Some((TokenType::Deployment, b.entity_id())),
            _ => None,
        }),
    );
    let mut permissions = Vec::new();
    for (token_type, entity_id) in candidates {
        let access = best_access(
            roles,
            TokenScope {
                token_type,
                entity_id,
            },
        );
        let level = match access {
            Access::None => continue,
            Access::Read => "read",
            Access::Manage => "write",
        };
        let resource = resource(org, token_type.entity_type(), entity_id, None);
        if access == Access::Manage {
            permissions.push(format!("apiTokens.read:{resource}"));
        }
        permissions.push(format!("apiTokens.{level}:{resource}"));
    }
    permissions.sort();
    permissions.dedup();
    out.extend(permissions);
    out
}

/// The resource a binding applies to (see [`scopes`]).
pub fn binding_resource(org: &OrganizationId, binding: &RoleBinding) -> String {
    resource(
        org,
        binding.entity_type(),
        binding.entity_id(),
        binding.deployment_id(),
    )
}

fn resource(
    org: &OrganizationId,
    entity_type: EntityType,
    entity_id: &EntityId,
    deployment: Option<&EntityId>,
) -> String {
    let mut out = format!("organizations/{}", segment(org.as_str()));
    let mut push = |collection: &str, id: &str| {
        out.push('/');
        out.push_str(collection);
        out.push('/');
        out.push_str(&segment(id));
    };
    match entity_type {
        EntityType::Organization => {}
        EntityType::Workspace => push("workspaces", entity_id.as_str()),
        EntityType::Deployment => push("deployments", entity_id.as_str()),
        EntityType::Dag | EntityType::DagTag => {
            if let Some(dep) = deployment {
                push("deployments", dep.as_str());
            }
            let collection = if entity_type == EntityType::Dag {
                "dags"
            } else {
                "dagTags"
            };
            push(collection, entity_id.as_str());
        }
    }
    out
}

/// `id` with every byte outside RFC 3986's unreserved set percent-encoded
/// (ids accepted today never have any).
fn segment(id: &str) -> std::borrow::Cow<'_, str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if id.bytes().all(unreserved) {
        return std::borrow::Cow::Borrowed(id);
    }
    let mut out = String::with_capacity(id.len() * 3);
    for b in id.bytes() {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(s: &str) -> OrganizationId {
        OrganizationId::parse("o", s).unwrap()
    }
    fn id(s: &str) -> EntityId {
        EntityId::from_stored(s.into())
    }
    fn bind(role: Role, entity: &str) -> RoleBinding {
        let t = EntityType::ALL.into_iter().find(|e| role.fits(*e)).unwrap();
        let dep = t.lives_in_deployment().then(|| id("dep"));
        RoleBinding::from_stored(t, id(entity), role, dep)
    }
    fn ws_token(ws: &EntityId) -> TokenScope<'_> {
        TokenScope {
            token_type: TokenType::Workspace,
            entity_id: ws,
        }
    }

    #[test]
    fn other_organization_is_invisible_whatever_the_role() {
        let owner = [bind(Role::OrganizationOwner, "a")];
        let target_entity = id("b");
        let target = TokenScope {
            token_type: TokenType::Organization,
            entity_id: &target_entity,
        };
        for action in Action::ALL {
            assert_eq!(
                authorize(&org("a"), &owner, &org("b"), target, action),
                Err(Denied::NotVisible)
            );
        }
        assert_eq!(
            authorize_create(&org("a"), &owner, &org("b"), target),
            Err(Denied::NotVisible)
        );
        assert_eq!(
            visibility(&org("a"), &owner, &org("b")),
            Err(Denied::NotVisible)
        );
    }

    #[test]
    fn workspace_member_reads_only_its_workspace() {
        let roles = [bind(Role::WorkspaceMember, "ws1")];
        let (ws1, ws2) = (id("ws1"), id("ws2"));
        assert_eq!(
            authorize(&org("o"), &roles, &org("o"), ws_token(&ws1), Action::Read),
            Ok(())
        );
        assert_eq!(
            authorize(&org("o"), &roles, &org("o"), ws_token(&ws1), Action::Rotate),
            Err(Denied::Insufficient)
        );
        assert_eq!(
            authorize(&org("o"), &roles, &org("o"), ws_token(&ws2), Action::Read),
            Err(Denied::NotVisible)
        );
        assert_eq!(
            visibility(&org("o"), &roles, &org("o")),
            Ok(Visibility::Scoped {
                workspaces: vec![ws1],
                deployments: vec![]
            })
        );
    }

    #[test]
    fn no_escalation_by_grant() {
        let ws_owner = [bind(Role::WorkspaceOwner, "ws1")];
        assert!(can_grant(&ws_owner, &bind(Role::WorkspaceOwner, "ws1")));
        assert!(!can_grant(&ws_owner, &bind(Role::WorkspaceOwner, "ws2")));
        assert!(!can_grant(&ws_owner, &bind(Role::OrganizationOwner, "o")));
        assert!(!can_grant(&ws_owner, &bind(Role::DeploymentAdmin, "dep")));
        let dep_admin = [bind(Role::DeploymentAdmin, "dep")];
        assert!(can_grant(&dep_admin, &bind(Role::DagAuthor, "etl")));
        assert!(!can_grant(&dep_admin, &bind(Role::WorkspaceMember, "ws1")));
        let member = [bind(Role::OrganizationMember, "o")];
        assert!(!can_grant(&member, &bind(Role::OrganizationMember, "o")));
    }

    #[test]
    fn handing_out_needs_every_held_role_grantable() {
        let ws_owner = [bind(Role::WorkspaceOwner, "ws1")];
        let own = bind(Role::WorkspaceMember, "ws1");
        let extra = bind(Role::DeploymentAdmin, "dep9");
        assert_eq!(ungrantable(&ws_owner, std::slice::from_ref(&own)), None);
        assert_eq!(
            ungrantable(&ws_owner, &[own.clone(), extra.clone()]),
            Some(&extra)
        );
        let owner = [bind(Role::OrganizationOwner, "o")];
        assert_eq!(ungrantable(&owner, &[own, extra]), None);
    }

    /// The handlers call these methods, not the functions under them: each
    /// must pass its own organization and roles through, in both outcomes.
    #[test]
    fn principal_methods_decide_as_the_rules() {
        let member = Principal {
            organization: org("o"),
            roles: vec![bind(Role::WorkspaceMember, "ws1")],
        };
        let owner = Principal {
            organization: org("o"),
            roles: vec![bind(Role::WorkspaceOwner, "ws1")],
        };
        let (ws1, ws2) = (id("ws1"), id("ws2"));
        assert_eq!(
            member.authorize(&org("o"), ws_token(&ws1), Action::Read),
            Ok(())
        );
        assert_eq!(
            member.authorize(&org("o"), ws_token(&ws1), Action::Delete),
            Err(Denied::Insufficient)
        );
        assert_eq!(
            member.authorize(&org("o"), ws_token(&ws2), Action::Read),
            Err(Denied::NotVisible)
        );
        assert_eq!(
            owner.authorize(&org("x"), ws_token(&ws1), Action::Read),
            Err(Denied::NotVisible)
        );
        assert_eq!(owner.authorize_create(&org("o"), ws_token(&ws1)), Ok(()));
        assert_eq!(
            member.authorize_create(&org("o"), ws_token(&ws1)),
            Err(Denied::Insufficient)
        );
        assert_eq!(
            owner.authorize_create(&org("x"), ws_token(&ws1)),
            Err(Denied::NotVisible)
        );
        assert_eq!(
            member.visibility(&org("o")),
            Ok(Visibility::Scoped {
                workspaces: vec![ws1.clone()],
                deployments: vec![]
            })
        );
        assert_eq!(member.visibility(&org("x")), Err(Denied::NotVisible));
        let own = bind(Role::WorkspaceMember, "ws1");
        let foreign = bind(Role::WorkspaceMember, "ws2");
        assert!(owner.can_grant(&own));
        assert!(!owner.can_grant(&foreign));
        assert!(!member.can_grant(&own));
        assert_eq!(owner.ungrantable(std::slice::from_ref(&own)), None);
        assert_eq!(
            owner.ungrantable(&[own.clone(), foreign.clone()]),
            Some(&foreign)
        );
    }

    #[test]
    fn deployment_admin_grants_on_its_deployment_only() {
        let admin = [bind(Role::DeploymentAdmin, "dep")];
        assert!(can_grant(&admin, &bind(Role::DeploymentAdmin, "dep")));
        assert!(!can_grant(&admin, &bind(Role::DeploymentAdmin, "dep2")));
        let elsewhere = RoleBinding::from_stored(
            EntityType::Dag,
            id("etl"),
            Role::DagAuthor,
            Some(id("dep2")),
        );
        assert!(!can_grant(&admin, &elsewhere));
        assert!(!can_grant(&admin, &bind(Role::OrganizationMember, "o")));
    }

    #[test]
    fn readers_without_scope_are_refused_list() {
        for role in [
            Role::OrganizationMember,
            Role::WorkspaceAccessor,
            Role::DagViewer,
        ] {
            let roles = [bind(role, "x")];
            assert_eq!(
                visibility(&org("o"), &roles, &org("o")),
                Err(Denied::Insufficient),
                "{role}"
            );
        }
    }

    #[test]
    fn plain_scopes_name_only_what_holds_across_the_organization() {
        let o = org("o");
        assert_eq!(
            plain_scopes(&o, &[bind(Role::OrganizationOwner, "o")]),
            ["apiTokens.read", "apiTokens.write"]
        );
        assert_eq!(
            plain_scopes(&o, &[bind(Role::OrganizationBillingAdmin, "o")]),
            ["apiTokens.read"]
        );
        for role in [
            Role::OrganizationMember,
            Role::OrganizationObserveAdmin,
            Role::OrganizationObserveMember,
        ] {
            assert!(plain_scopes(&o, &[bind(role, "o")]).is_empty(), "{role}");
        }
        // A workspace owner manages its workspace's tokens only: no plain name.
        assert!(plain_scopes(&o, &[bind(Role::WorkspaceOwner, "ws1")]).is_empty());
        assert!(plain_scopes(&o, &[bind(Role::DeploymentAdmin, "d1")]).is_empty());
        assert_eq!(
            plain_scopes(
                &o,
                &[
                    bind(Role::WorkspaceOwner, "ws1"),
                    bind(Role::OrganizationBillingAdmin, "o")
                ]
            ),
            ["apiTokens.read"]
        );
    }

    #[test]
    fn scopes_list_roles_then_permissions() {
        let roles = [
            bind(Role::WorkspaceOwner, "ws1"),
            bind(Role::DagViewer, "etl"),
        ];
        assert_eq!(
            scopes(&org("o"), &roles),
            [
                "role:WORKSPACE_OWNER:organizations/o/workspaces/ws1",
                "role:DAG_VIEWER:organizations/o/deployments/dep/dags/etl",
                "apiTokens.read:organizations/o/workspaces/ws1",
                "apiTokens.write:organizations/o/workspaces/ws1",
            ]
        );
        let owner = [bind(Role::OrganizationOwner, "o")];
        assert_eq!(
            scopes(&org("o"), &owner),
            [
                "role:ORGANIZATION_OWNER:organizations/o",
                "apiTokens.read:organizations/o",
                "apiTokens.write:organizations/o",
            ]
        );
        let deployment = [bind(Role::DeploymentAdmin, "d1")];
        assert_eq!(
            scopes(&org("o"), &deployment),
            [
                "role:DEPLOYMENT_ADMIN:organizations/o/deployments/d1",
                "apiTokens.read:organizations/o/deployments/d1",
                "apiTokens.write:organizations/o/deployments/d1",
            ]
        );
        let tag = [RoleBinding::from_stored(
            EntityType::DagTag,
            id("nightly"),
            Role::DagAuthor,
            Some(id("d1")),
        )];
        assert_eq!(
            scopes(&org("o"), &tag),
            ["role:DAG_AUTHOR:organizations/o/deployments/d1/dagTags/nightly"]
        );
    }

    #[test]
    fn scope_segments_of_legacy_ids_are_escaped() {
        let legacy = [RoleBinding::from_stored(
            EntityType::Workspace,
            id("a/b:c d%"),
            Role::WorkspaceMember,
            None,
        )];
        assert_eq!(
            scopes(&org("o"), &legacy)[0],
            "role:WORKSPACE_MEMBER:organizations/o/workspaces/a%2Fb%3Ac%20d%25"
        );
    }
}
