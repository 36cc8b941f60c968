//! Roles and the entities they apply to.

use std::fmt;

use super::error::FieldViolation;
use super::ids::EntityId;

/// The kind of entity a role binding applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    /// The organization itself.
    Organization,
    /// A workspace.
    Workspace,
    /// A deployment.
    Deployment,
    /// A DAG inside a deployment.
    Dag,
    /// Every DAG with a tag, inside a deployment.
    DagTag,
}

impl EntityType {
    /// Every entity type, broadest first.
    pub const ALL: [Self; 5] = [
        Self::Organization,
        Self::Workspace,
        Self::Deployment,
        Self::Dag,
        Self::DagTag,
    ];

    /// The contract's spelling, as in JSON and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organization => "ORGANIZATION",
            Self::Workspace => "WORKSPACE",
            Self::Deployment => "DEPLOYMENT",
            Self::Dag => "DAG",
            Self::DagTag => "DAG_TAG",
        }
    }

    /// Parses the contract's spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether bindings on this entity live inside a deployment and must name it.
    pub fn lives_in_deployment(self) -> bool {
        matches!(self, Self::Dag | Self::DagTag)
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name, as Astronomer spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Full control of the organization.
    OrganizationOwner,
    /// Manages billing; a member otherwise.
    OrganizationBillingAdmin,
    /// Belongs to the organization.
    OrganizationMember,
    /// Administers Astro Observe (observability) for the organization.
    OrganizationObserveAdmin,
    /// Uses Astro Observe (observability) in the organization.
    OrganizationObserveMember,
    /// Full control of a workspace.
    WorkspaceOwner,
    /// Operates a workspace's deployments.
    WorkspaceOperator,
    /// Authors DAGs in a workspace.
    WorkspaceAuthor,
    /// Reads a workspace.
    WorkspaceMember,
    /// Triggers and reads DAG runs in a workspace.
    WorkspaceAccessor,
    /// Full control of one deployment.
    DeploymentAdmin,
    /// Authors a DAG (or tagged DAGs).
    DagAuthor,
    /// Reads a DAG (or tagged DAGs).
    DagViewer,
}

impl Role {
    /// Every role, organization roles first.
    pub const ALL: [Self; 13] = [
        Self::OrganizationOwner,
        Self::OrganizationBillingAdmin,
        Self::OrganizationMember,
        Self::OrganizationObserveAdmin,
        Self::OrganizationObserveMember,
        Self::WorkspaceOwner,
        Self::WorkspaceOperator,
        Self::WorkspaceAuthor,
        Self::WorkspaceMember,
        Self::WorkspaceAccessor,
        Self::DeploymentAdmin,
        Self::DagAuthor,
        Self::DagViewer,
    ];

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrganizationOwner => "ORGANIZATION_OWNER",
            Self::OrganizationBillingAdmin => "ORGANIZATION_BILLING_ADMIN",
            Self::OrganizationMember => "ORGANIZATION_MEMBER",
            Self::OrganizationObserveAdmin => "ORGANIZATION_OBSERVE_ADMIN",
            Self::OrganizationObserveMember => "ORGANIZATION_OBSERVE_MEMBER",
            Self::WorkspaceOwner => "WORKSPACE_OWNER",
            Self::WorkspaceOperator => "WORKSPACE_OPERATOR",
            Self::WorkspaceAuthor => "WORKSPACE_AUTHOR",
            Self::WorkspaceMember => "WORKSPACE_MEMBER",
            Self::WorkspaceAccessor => "WORKSPACE_ACCESSOR",
            Self::DeploymentAdmin => "DEPLOYMENT_ADMIN",
            Self::DagAuthor => "DAG_AUTHOR",
            Self::DagViewer => "DAG_VIEWER",
        }
    }

    /// Parses the contract's spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Parses a role named in `field`.
    pub fn parse(field: &str, name: &str) -> Result<Self, FieldViolation> {
        if name.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        Self::from_name(name).ok_or_else(|| FieldViolation::new(field, "is not a known role"))
    }

    /// Whether this role can be held on an entity of type `entity`.
    pub fn fits(self, entity: EntityType) -> bool {
        use EntityType as E;
        match self {
            Self::OrganizationOwner
            | Self::OrganizationBillingAdmin
            | Self::OrganizationMember
            | Self::OrganizationObserveAdmin
            | Self::OrganizationObserveMember => entity == E::Organization,
            Self::WorkspaceOwner
            | Self::WorkspaceOperator
            | Self::WorkspaceAuthor
            | Self::WorkspaceMember
            | Self::WorkspaceAccessor => entity == E::Workspace,
            Self::DeploymentAdmin => entity == E::Deployment,
            Self::DagAuthor | Self::DagViewer => matches!(entity, E::Dag | E::DagTag),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role held on one entity. DAG and DAG_TAG bindings name the deployment
/// they live in; the others never do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleBinding {
    entity_type: EntityType,
    entity_id: EntityId,
    role: Role,
    deployment_id: Option<EntityId>,
}

impl RoleBinding {
    /// A binding, checked: the role fits the entity, and a deployment is named
    /// exactly when the entity lives in one. `field` prefixes field names in
    /// violations (e.g. `roles[2]`).
    pub fn new(
        field: &str,
        entity_type: EntityType,
        entity_id: EntityId,
        role: Role,
        deployment_id: Option<EntityId>,
    ) -> Result<Self, FieldViolation> {
        if !role.fits(entity_type) {
            return Err(FieldViolation::new(
                join(field, "role"),
                format!("{role} cannot be held on a {entity_type} entity"),
            ));
        }
        match (entity_type.lives_in_deployment(), &deployment_id) {
            (true, None) => Err(FieldViolation::new(
                join(field, "deploymentId"),
                format!("is required for {entity_type} roles"),
            )),
            (false, Some(_)) => Err(FieldViolation::new(
                join(field, "deploymentId"),
                format!("must be empty for {entity_type} roles"),
            )),
            _ => Ok(Self {
                entity_type,
                entity_id,
                role,
                deployment_id,
            }),
        }
    }

    /// Rebuilds a binding read back from the store, where it was checked on
    /// the way in.
    pub fn from_stored(
        entity_type: EntityType,
        entity_id: EntityId,
        role: Role,
        deployment_id: Option<EntityId>,
    ) -> Self {
        Self {
            entity_type,
            entity_id,
            role,
            deployment_id,
        }
    }

    /// The type of entity the role applies to.
    pub fn entity_type(&self) -> EntityType {
        self.entity_type
    }

    /// The entity the role applies to.
    pub fn entity_id(&self) -> &EntityId {
        &self.entity_id
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// For DAG and DAG_TAG bindings, the deployment they live in.
    pub fn deployment_id(&self) -> Option<&EntityId> {
        self.deployment_id.as_ref()
    }
}

/// `prefix.name`, or `name` alone when there is no prefix.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> EntityId {
        EntityId::parse("entityId", s).unwrap()
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.as_str()), Some(role));
        }
        for t in EntityType::ALL {
            assert_eq!(EntityType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(Role::from_name("organization_owner"), None);
        assert!(Role::parse("role", "").is_err());
    }

    #[test]
    fn every_role_fits_exactly_its_entities() {
        let fits: Vec<(Role, Vec<EntityType>)> = Role::ALL
            .into_iter()
            .map(|r| {
                (
                    r,
                    EntityType::ALL.into_iter().filter(|e| r.fits(*e)).collect(),
                )
            })
            .collect();
        use EntityType as E;
        for (role, entities) in fits {
            let expected: &[E] = match role.as_str().split('_').next() {
                Some("ORGANIZATION") => &[E::Organization],
                Some("WORKSPACE") => &[E::Workspace],
                Some("DEPLOYMENT") => &[E::Deployment],
                _ => &[E::Dag, E::DagTag],
            };
            assert_eq!(entities, expected, "{role}");
        }
    }

    #[test]
    fn binding_rules() {
        let ok = RoleBinding::new(
            "roles[0]",
            EntityType::Dag,
            id("etl"),
            Role::DagViewer,
            Some(id("d1")),
        );
        assert!(ok.is_ok());
        let no_dep = RoleBinding::new(
            "roles[0]",
            EntityType::DagTag,
            id("t"),
            Role::DagAuthor,
            None,
        );
        assert_eq!(no_dep.unwrap_err().field, "roles[0].deploymentId");
        let extra_dep = RoleBinding::new(
            "",
            EntityType::Workspace,
            id("w"),
            Role::WorkspaceOwner,
            Some(id("d")),
        );
        assert_eq!(extra_dep.unwrap_err().field, "deploymentId");
        let misfit = RoleBinding::new(
            "",
            EntityType::Workspace,
            id("w"),
            Role::OrganizationOwner,
            None,
        );
        assert_eq!(misfit.unwrap_err().field, "role");
    }
}
