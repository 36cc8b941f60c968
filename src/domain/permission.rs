//! Authorization: what a caller's roles let it do to tokens. Every RPC but
//! Lookup asks [`authorize`] (or [`authorize_create`]); List asks
//! [`visibility`]; Create and UpdateRoles ask [`can_grant`].
//!
//! tokend does not know which workspace a deployment belongs to, so
//! workspace roles reach WORKSPACE tokens only; DEPLOYMENT tokens are
//! reached by DEPLOYMENT_ADMIN on that deployment and by the organization's
//! owners. Deny is the default.

use std::fmt::Write as _;

use super::ids::{EntityId, OrganizationId};
use super::role::{EntityType, Role, RoleBinding};
use super::token::TokenType;

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

/// May a caller of `caller_org` holding `roles` do `action` to an existing
/// token of `org` with scope `target`? Another organization, or a token the
/// caller cannot read, is [`Denied::NotVisible`].
pub fn authorize(
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

/// May the caller create a token of scope `target` in `org`? Another
/// organization is [`Denied::NotVisible`]; too little authority there is
/// [`Denied::Insufficient`] (nothing exists yet whose existence could leak).
pub fn authorize_create(
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
pub fn can_grant(roles: &[RoleBinding], binding: &RoleBinding) -> bool {
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

/// The first of `held` (the roles of a token whose secret would be handed
/// out: by Rotate, or by re-enabling it) that a caller holding `roles` could
/// not grant. A caller may never obtain or revive a secret carrying a role
/// it could not have put on a token itself; `None` means it may.
pub fn ungrantable<'a>(roles: &[RoleBinding], held: &'a [RoleBinding]) -> Option<&'a RoleBinding> {
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

/// What List shows a caller of `caller_org` holding `roles` in `org`.
/// Another organization is [`Denied::NotVisible`]; a caller that can read no
/// token at all is [`Denied::Insufficient`].
pub fn visibility(
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

/// The scopes Lookup reports: one `role:<ROLE>:<resource>` entry per
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

/// The permission matrix as a Markdown table, generated from [`authorize`],
/// [`authorize_create`] and [`can_grant`] so `docs/authorization.md` cannot
/// drift from the code.
pub fn matrix_markdown() -> String {
    let org = OrganizationId::from_stored("org".to_owned());
    let ws = EntityId::from_stored("ws".into());
    let other_ws = EntityId::from_stored("other-ws".into());
    let dep = EntityId::from_stored("dep".into());
    let other_dep = EntityId::from_stored("other-dep".into());
    let org_entity = EntityId::from(&org);
    let targets = [
        ("ORGANIZATION tokens", TokenType::Organization, &org_entity),
        (
            "WORKSPACE tokens of its workspace",
            TokenType::Workspace,
            &ws,
        ),
        (
            "WORKSPACE tokens of another workspace",
            TokenType::Workspace,
            &other_ws,
        ),
        (
            "DEPLOYMENT tokens of its deployment",
            TokenType::Deployment,
            &dep,
        ),
        (
            "DEPLOYMENT tokens of another deployment",
            TokenType::Deployment,
            &other_dep,
        ),
    ];
    let mut table = String::from("| role (held on) |");
    for (name, _, _) in &targets {
        let _ = write!(table, " {name} |");
    }
    table.push_str(" may grant |\n|---|");
    for _ in &targets {
        table.push_str("---|");
    }
    table.push_str("---|\n");
    for role in Role::ALL {
        let entity_type = EntityType::ALL
            .into_iter()
            .find(|e| role.fits(*e))
            .unwrap_or(EntityType::Organization);
        let (entity, deployment) = match entity_type {
            EntityType::Organization => (org_entity.clone(), None),
            EntityType::Workspace => (ws.clone(), None),
            EntityType::Deployment => (dep.clone(), None),
            EntityType::Dag | EntityType::DagTag => {
                (EntityId::from_stored("dag".into()), Some(dep.clone()))
            }
        };
        let binding = RoleBinding::from_stored(entity_type, entity, role, deployment);
        let roles = [binding];
        let _ = write!(table, "| {role} ({}) |", entity_type);
        for (_, token_type, entity_id) in &targets {
            let target = TokenScope {
                token_type: *token_type,
                entity_id,
            };
            let allowed: Vec<&str> = Action::ALL
                .into_iter()
                .filter(|action| match action {
                    Action::Create => authorize_create(&org, &roles, &org, target).is_ok(),
                    other => authorize(&org, &roles, &org, target, *other).is_ok(),
                })
                .map(Action::as_str)
                .collect();
            let cell = if allowed.is_empty() {
                "—".to_owned()
            } else {
                allowed.join(", ")
            };
            let _ = write!(table, " {cell} |");
        }
        let _ = writeln!(table, " {} |", grants(&roles, &org_entity, &ws, &dep));
    }
    table
}

/// Which roles (held on their own entity) may rotate or re-enable a token of
/// their own scope that also holds other roles: a Markdown table generated
/// from [`ungrantable`], so the rule cannot drift from the docs.
pub fn hand_out_markdown() -> String {
    let org = EntityId::from_stored("org".into());
    let own_ws = EntityId::from_stored("ws".into());
    let own_dep = EntityId::from_stored("dep".into());
    let other = |s: &str| EntityId::from_stored(s.into());
    let extras = [
        ("only roles it may grant", None),
        (
            "also DEPLOYMENT_ADMIN on a deployment",
            Some(RoleBinding::from_stored(
                EntityType::Deployment,
                other("dep-9"),
                Role::DeploymentAdmin,
                None,
            )),
        ),
        (
            "also a DAG role in its deployment",
            Some(RoleBinding::from_stored(
                EntityType::Dag,
                other("etl"),
                Role::DagAuthor,
                Some(own_dep.clone()),
            )),
        ),
        (
            "also a DAG role in another deployment",
            Some(RoleBinding::from_stored(
                EntityType::Dag,
                other("etl"),
                Role::DagAuthor,
                Some(other("dep-9")),
            )),
        ),
    ];
    let mut table = String::from("| caller's role (held on) |");
    for (name, _) in &extras {
        let _ = write!(table, " token holding {name} |");
    }
    table.push_str("\n|---|");
    for _ in &extras {
        table.push_str("---|");
    }
    table.push('\n');
    for role in [
        Role::OrganizationOwner,
        Role::WorkspaceOwner,
        Role::DeploymentAdmin,
    ] {
        let (entity_type, entity) = match role {
            Role::OrganizationOwner => (EntityType::Organization, org.clone()),
            Role::WorkspaceOwner => (EntityType::Workspace, own_ws.clone()),
            _ => (EntityType::Deployment, own_dep.clone()),
        };
        let caller = [RoleBinding::from_stored(
            entity_type,
            entity.clone(),
            role,
            None,
        )];
        let _ = write!(table, "| {role} ({entity_type}) |");
        for (_, extra) in &extras {
            let held: Vec<RoleBinding> = std::iter::once(caller[0].clone())
                .chain(extra.iter().cloned())
                .collect();
            let cell = match ungrantable(&caller, &held) {
                None => "rotate, re-enable".to_owned(),
                Some(b) => format!("PERMISSION_DENIED (may not grant {})", b.role()),
            };
            let _ = write!(table, " {cell} |");
        }
        table.push('\n');
    }
    table
}

/// Describes what `roles` may grant, for the matrix.
fn grants(roles: &[RoleBinding], org: &EntityId, ws: &EntityId, dep: &EntityId) -> String {
    let samples = [
        (
            "any role in the organization",
            RoleBinding::from_stored(
                EntityType::Organization,
                org.clone(),
                Role::OrganizationOwner,
                None,
            ),
        ),
        (
            "WORKSPACE roles on its workspace",
            RoleBinding::from_stored(
                EntityType::Workspace,
                ws.clone(),
                Role::WorkspaceOwner,
                None,
            ),
        ),
        (
            "DEPLOYMENT_ADMIN on its deployment",
            RoleBinding::from_stored(
                EntityType::Deployment,
                dep.clone(),
                Role::DeploymentAdmin,
                None,
            ),
        ),
        (
            "DAG roles inside its deployment",
            RoleBinding::from_stored(
                EntityType::Dag,
                EntityId::from_stored("dag".into()),
                Role::DagAuthor,
                Some(dep.clone()),
            ),
        ),
    ];
    if can_grant(roles, &samples[0].1) {
        return samples[0].0.to_owned();
    }
    let granted: Vec<&str> = samples[1..]
        .iter()
        .filter(|(_, b)| can_grant(roles, b))
        .map(|(d, _)| *d)
        .collect();
    if granted.is_empty() {
        "nothing".to_owned()
    } else {
        granted.join("; ")
    }
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

    /// The byte range between `<!-- name:begin -->` and `<!-- name:end -->`.
    fn section(doc: &str, name: &str) -> std::ops::Range<usize> {
        let begin = format!("<!-- {name}:begin -->\n");
        let start = doc.find(&begin).expect("begin marker") + begin.len();
        let end = doc
            .find(&format!("<!-- {name}:end -->"))
            .expect("end marker");
        start..end
    }

    #[test]
    fn docs_match_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/authorization.md");
        let mut doc = std::fs::read_to_string(path).unwrap();
        let generated = [
            ("matrix", matrix_markdown()),
            ("hand-out", hand_out_markdown()),
        ];
        let write = std::env::var_os("TOKEND_WRITE_DOCS").is_some();
        for (name, table) in generated {
            assert!(table.lines().count() > 3, "{name} table is empty");
            let range = section(&doc, name);
            if write {
                doc.replace_range(range, &table);
                continue;
            }
            assert_eq!(
                &doc[range], table,
                "docs/authorization.md ({name}) is out of date; regenerate with \
                 TOKEND_WRITE_DOCS=1 cargo test --lib docs_match_the_code"
            );
        }
        if write {
            std::fs::write(path, doc).unwrap();
        }
    }
}
