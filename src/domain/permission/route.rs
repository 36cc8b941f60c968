//! Route requirements for the gateway (Envoy ext_authz): what a route asks
//! of a token, read from the Check request's context extensions, and the
//! role inclusion that decides whether a token's bindings meet it.
//!
//! Parsed once ("parse, don't validate"): a [`Requirement`] can only hold a
//! complete, well-formed requirement; anything else is a
//! [`Misconfigured`] route, which the gateway must refuse (never allow).

use std::collections::HashMap;
use std::fmt;

use super::super::ids::{EntityId, OrganizationId};
use super::super::role::{EntityType, Role, RoleBinding};

/// The context extension naming the organization a token must belong to.
pub const ORGANIZATION_ID: &str = "tokend.organization_id";
/// The context extension naming the role a token must hold (or include).
pub const REQUIRED_ROLE: &str = "tokend.required_role";
/// The context extension naming the entity of [`REQUIRED_ROLE`], `TYPE:ID`.
pub const ENTITY: &str = "tokend.entity";
/// Every extension key tokend reads; any other `tokend.` key is a typo of
/// one of them and makes the route misconfigured.
pub const KEYS: [&str; 3] = [ORGANIZATION_ID, REQUIRED_ROLE, ENTITY];

/// What a route requires of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Any valid token.
    AnyToken,
    /// A token of this organization.
    Organization(OrganizationId),
    /// A token of this organization holding `role` on the entity, or a role
    /// that includes it.
    Role {
        /// The route's organization.
        organization: OrganizationId,
        /// The role required.
        role: Role,
        /// The entity it must be held on.
        entity_type: EntityType,
        /// That entity's id.
        entity_id: EntityId,
    },
}

/// Why a route's requirement cannot be used: the route is refused (403)
/// and the value logged. Carries the offending value, which is the
/// operator's configuration, never a client's input.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Misconfigured {
    /// `tokend.required_role` names no known role.
    UnknownRole(String),
    /// `tokend.entity` is not `TYPE:ID` with a known type and a valid id.
    MalformedEntity(String),
    /// The role cannot be held on the entity's type.
    RoleDoesNotFit(String),
    /// `tokend.organization_id` is not a valid organization id.
    MalformedOrganization(String),
    /// A role requirement without `tokend.organization_id`.
    NoOrganization,
    /// Only one of `tokend.required_role` and `tokend.entity`.
    Incomplete,
    /// `tokend.entity` is an organization other than `tokend.organization_id`.
    OtherOrganization(String),
    /// A `tokend.` key tokend does not read (a typo would otherwise open
    /// the route to any token).
    UnknownKey(String),
}

impl fmt::Display for Misconfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownRole(v) => write!(f, "{REQUIRED_ROLE} {v:?} is not a known role"),
            Self::MalformedEntity(v) => write!(f, "{ENTITY} {v:?} is not TYPE:ID"),
            Self::RoleDoesNotFit(v) => write!(f, "{v}"),
            Self::MalformedOrganization(v) => {
                write!(f, "{ORGANIZATION_ID} {v:?} is not an organization id")
            }
            Self::NoOrganization => write!(f, "{REQUIRED_ROLE} needs {ORGANIZATION_ID}"),
            Self::Incomplete => write!(f, "{REQUIRED_ROLE} and {ENTITY} go together"),
            Self::OtherOrganization(v) => {
                write!(
                    f,
                    "{ENTITY} {v:?} is not the organization of {ORGANIZATION_ID}"
                )
            }
            Self::UnknownKey(k) => write!(f, "unknown context extension {k:?}"),
        }
    }
}

impl Requirement {
    /// The requirement a route's context extensions state. Keys that do not
    /// start with `tokend.` belong to others and are ignored; no tokend key
    /// means any valid token.
    pub fn parse(extensions: &HashMap<String, String>) -> Result<Self, Misconfigured> {
        if let Some(key) = extensions
            .keys()
            .filter(|k| k.starts_with("tokend.") && !KEYS.contains(&k.as_str()))
            .min()
        {
            return Err(Misconfigured::UnknownKey(key.clone()));
        }
        let get = |key: &str| extensions.get(key).map(String::as_str);
        let organization = get(ORGANIZATION_ID)
            .map(|v| {
                OrganizationId::parse(ORGANIZATION_ID, v)
                    .map_err(|_| Misconfigured::MalformedOrganization(v.to_owned()))
            })
            .transpose()?;
        let (role, entity) = match (get(REQUIRED_ROLE), get(ENTITY)) {
            (None, None) => {
                return Ok(organization.map_or(Self::AnyToken, Self::Organization));
            }
            (Some(role), Some(entity)) => (role, entity),
            _ => return Err(Misconfigured::Incomplete),
        };
        let role = Role::from_name(role).ok_or_else(|| Misconfigured::UnknownRole(role.into()))?;
        let malformed = || Misconfigured::MalformedEntity(entity.to_owned());
        let (entity_type, id) = entity.split_once(':').ok_or_else(malformed)?;
        let entity_type = EntityType::from_name(entity_type).ok_or_else(malformed)?;
        let entity_id = EntityId::parse(ENTITY, id).map_err(|_| malformed())?;
        if !role.fits(entity_type) {
            return Err(Misconfigured::RoleDoesNotFit(format!(
                "{role} cannot be held on a {entity_type} entity"
            )));
        }
        let organization = organization.ok_or(Misconfigured::NoOrganization)?;
        if entity_type == EntityType::Organization && entity_id.as_str() != organization.as_str() {
            return Err(Misconfigured::OtherOrganization(entity.to_owned()));
        }
        Ok(Self::Role {
            organization,
            role,
            entity_type,
            entity_id,
        })
    }
}

/// Whether a token of `org` holding `roles` meets `requirement`. An
/// ORGANIZATION_OWNER of the route's organization meets every requirement
/// in it; otherwise a binding on the very entity with a role that includes
/// the required one (see [`includes`]).
pub fn satisfies(org: &OrganizationId, roles: &[RoleBinding], requirement: &Requirement) -> bool {
    match requirement {
        Requirement::AnyToken => true,
        Requirement::Organization(required) => org == required,
        Requirement::Role {
            organization,
            role,
            entity_type,
            entity_id,
        } => {
            org == organization
                && roles.iter().any(|b| {
                    b.role() == Role::OrganizationOwner
                        || (b.entity_type() == *entity_type
                            && b.entity_id() == entity_id
                            && includes(b.role(), *role))
                })
        }
    }
}

/// Whether holding `held` on an entity gives `required` on the same entity:
/// the role itself, or one of the roles it includes (written out in full,
/// so the relation needs no closure).
pub fn includes(held: Role, required: Role) -> bool {
    held == required || included(held).contains(&required)
}

/// The roles `role` includes besides itself, on the entity it is held on.
/// Exhaustive on purpose: a new role does not compile until it is placed
/// here (and in `docs/authorization.md`, regenerated).
pub fn included(role: Role) -> &'static [Role] {
    use Role as R;
    match role {
        R::OrganizationOwner => &[
            R::OrganizationBillingAdmin,
            R::OrganizationMember,
            R::OrganizationObserveAdmin,
            R::OrganizationObserveMember,
        ],
        R::OrganizationBillingAdmin => &[R::OrganizationMember],
        R::OrganizationMember => &[],
        // Astronomer's observability roles: the admin includes the member;
        // neither includes membership of the organization or billing, and
        // no other role includes them but the owner.
        R::OrganizationObserveAdmin => &[R::OrganizationObserveMember],
        R::OrganizationObserveMember => &[],
        R::WorkspaceOwner => &[
            R::WorkspaceOperator,
            R::WorkspaceAuthor,
            R::WorkspaceMember,
            R::WorkspaceAccessor,
        ],
        R::WorkspaceOperator => &[R::WorkspaceAuthor, R::WorkspaceMember, R::WorkspaceAccessor],
        R::WorkspaceAuthor => &[R::WorkspaceMember, R::WorkspaceAccessor],
        R::WorkspaceMember => &[R::WorkspaceAccessor],
        R::WorkspaceAccessor => &[],
        R::DeploymentAdmin => &[],
        R::DagAuthor => &[R::DagViewer],
        R::DagViewer => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }
    fn org(s: &str) -> OrganizationId {
        OrganizationId::parse("o", s).unwrap()
    }
    fn id(s: &str) -> EntityId {
        EntityId::from_stored(s.into())
    }
    fn bind(role: Role, t: EntityType, entity: &str) -> RoleBinding {
        let dep = t.lives_in_deployment().then(|| id("dep"));
        RoleBinding::from_stored(t, id(entity), role, dep)
    }
    fn role_req(role: Role, t: EntityType, entity: &str) -> Requirement {
        Requirement::Role {
            organization: org("org-1"),
            role,
            entity_type: t,
            entity_id: id(entity),
        }
    }

    #[test]
    fn parses_every_shape_and_refuses_the_rest() {
        assert_eq!(Requirement::parse(&ext(&[])), Ok(Requirement::AnyToken));
        assert_eq!(
            Requirement::parse(&ext(&[("other.key", "x"), ("virtual_host", "v")])),
            Ok(Requirement::AnyToken),
            "keys of others are ignored"
        );
        assert_eq!(
            Requirement::parse(&ext(&[(ORGANIZATION_ID, "org-1")])),
            Ok(Requirement::Organization(org("org-1")))
        );
        assert_eq!(
            Requirement::parse(&ext(&[
                (ORGANIZATION_ID, "org-1"),
                (REQUIRED_ROLE, "WORKSPACE_AUTHOR"),
                (ENTITY, "WORKSPACE:ws-1"),
            ])),
            Ok(role_req(
                Role::WorkspaceAuthor,
                EntityType::Workspace,
                "ws-1"
            ))
        );
        let bad = |pairs: &[(&str, &str)]| Requirement::parse(&ext(pairs)).unwrap_err();
        assert_eq!(
            bad(&[
                (REQUIRED_ROLE, "WORKSPACE_AUTHOR"),
                (ENTITY, "WORKSPACE:ws-1")
            ]),
            Misconfigured::NoOrganization
        );
        assert_eq!(
            bad(&[
                (ORGANIZATION_ID, "org-1"),
                (REQUIRED_ROLE, "WORKSPACE_KING"),
                (ENTITY, "WORKSPACE:ws-1")
            ]),
            Misconfigured::UnknownRole("WORKSPACE_KING".into())
        );
        for entity in [
            "ws-1",
            "WORKSPACE",
            "WORKSPACE:",
            "SPACE:ws-1",
            "WORKSPACE:a/b",
            "workspace:ws-1",
        ] {
            assert_eq!(
                bad(&[
                    (ORGANIZATION_ID, "org-1"),
                    (REQUIRED_ROLE, "WORKSPACE_AUTHOR"),
                    (ENTITY, entity)
                ]),
                Misconfigured::MalformedEntity(entity.into()),
                "{entity}"
            );
        }
        assert!(matches!(
            bad(&[
                (ORGANIZATION_ID, "org-1"),
                (REQUIRED_ROLE, "DAG_VIEWER"),
                (ENTITY, "WORKSPACE:ws-1")
            ]),
            Misconfigured::RoleDoesNotFit(_)
        ));
        assert_eq!(
            bad(&[(ORGANIZATION_ID, "org-1"), (ENTITY, "WORKSPACE:ws-1")]),
            Misconfigured::Incomplete
        );
        assert_eq!(
            bad(&[
                (ORGANIZATION_ID, "org-1"),
                (REQUIRED_ROLE, "WORKSPACE_AUTHOR")
            ]),
            Misconfigured::Incomplete
        );
        assert_eq!(
            bad(&[
                (ORGANIZATION_ID, "org-1"),
                (REQUIRED_ROLE, "ORGANIZATION_MEMBER"),
                (ENTITY, "ORGANIZATION:org-2")
            ]),
            Misconfigured::OtherOrganization("ORGANIZATION:org-2".into())
        );
        assert_eq!(
            bad(&[("tokend.organisation_id", "org-1")]),
            Misconfigured::UnknownKey("tokend.organisation_id".into())
        );
        assert_eq!(
            bad(&[(ORGANIZATION_ID, "")]),
            Misconfigured::MalformedOrganization(String::new())
        );
    }

    #[test]
    fn inclusion_is_a_chain_per_entity_and_reflexive() {
        use Role as R;
        let chain = [
            R::WorkspaceOwner,
            R::WorkspaceOperator,
            R::WorkspaceAuthor,
            R::WorkspaceMember,
            R::WorkspaceAccessor,
        ];
        for (i, held) in chain.iter().enumerate() {
            for (j, required) in chain.iter().enumerate() {
                assert_eq!(includes(*held, *required), i <= j, "{held} ⊇ {required}");
            }
        }
        assert!(includes(R::DagAuthor, R::DagViewer));
        assert!(!includes(R::DagViewer, R::DagAuthor));
        assert!(includes(R::OrganizationBillingAdmin, R::OrganizationMember));
        assert!(!includes(
            R::OrganizationMember,
            R::OrganizationBillingAdmin
        ));
        for role in Role::ALL {
            assert!(includes(role, role), "{role}");
            // Inclusion never crosses entity kinds.
            for other in included(role) {
                let fits = |r: Role| EntityType::ALL.into_iter().filter(move |e| r.fits(*e));
                assert!(fits(role).eq(fits(*other)), "{role} includes {other}");
            }
            // Transitively closed as written.
            for other in included(role) {
                for further in included(*other) {
                    assert!(
                        included(role).contains(further),
                        "{role} ⊇ {other} ⊇ {further}"
                    );
                }
            }
        }
    }

    #[test]
    fn satisfaction() {
        let o = org("org-1");
        let ws_author = role_req(Role::WorkspaceAuthor, EntityType::Workspace, "ws-1");
        let operator = [bind(Role::WorkspaceOperator, EntityType::Workspace, "ws-1")];
        assert!(
            satisfies(&o, &operator, &ws_author),
            "a role that includes it"
        );
        let member = [bind(Role::WorkspaceMember, EntityType::Workspace, "ws-1")];
        assert!(!satisfies(&o, &member, &ws_author), "a lesser role");
        let elsewhere = [bind(Role::WorkspaceOwner, EntityType::Workspace, "ws-2")];
        assert!(!satisfies(&o, &elsewhere, &ws_author), "another workspace");
        let owner = [bind(
            Role::OrganizationOwner,
            EntityType::Organization,
            "org-1",
        )];
        for req in [
            ws_author.clone(),
            role_req(Role::DagAuthor, EntityType::Dag, "etl"),
            role_req(Role::DeploymentAdmin, EntityType::Deployment, "dep-1"),
            Requirement::Organization(org("org-1")),
        ] {
            assert!(satisfies(&o, &owner, &req), "owner: {req:?}");
            assert!(
                !satisfies(&org("org-2"), &owner, &req),
                "another org's owner: {req:?}"
            );
        }
        let billing = [bind(
            Role::OrganizationBillingAdmin,
            EntityType::Organization,
            "org-1",
        )];
        assert!(!satisfies(&o, &billing, &ws_author));
        assert!(satisfies(
            &o,
            &billing,
            &role_req(Role::OrganizationMember, EntityType::Organization, "org-1")
        ));
        assert!(satisfies(&o, &member, &Requirement::AnyToken));
        assert!(satisfies(&org("org-9"), &[], &Requirement::AnyToken));
        assert!(!satisfies(
            &o,
            &member,
            &Requirement::Organization(org("org-2"))
        ));
        let dag = [bind(Role::DagAuthor, EntityType::Dag, "etl")];
        assert!(satisfies(
            &o,
            &dag,
            &role_req(Role::DagViewer, EntityType::Dag, "etl")
        ));
        assert!(!satisfies(
            &o,
            &dag,
            &role_req(Role::DagViewer, EntityType::DagTag, "etl")
        ));
    }
}
