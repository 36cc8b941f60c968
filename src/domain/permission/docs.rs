//! Generates the tables of `docs/authorization.md` from the rules in
//! [`super`], and checks that the file holds exactly them
//! (`TOKEND_WRITE_DOCS=1 cargo test --lib docs_match_the_code` rewrites
//! them). Test code only: production never renders documentation.

use std::fmt::Write as _;

use super::*;

/// The permission matrix as a Markdown table, generated from [`authorize`],
/// [`authorize_create`] and [`can_grant`] so `docs/authorization.md` cannot
/// drift from the code.
fn matrix_markdown() -> String {
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
fn hand_out_markdown() -> String {
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

/// Which route requirements (ext_authz context extensions) one binding
/// meets: a Markdown table generated from [`route::satisfies`], so the
/// inclusion cannot drift from the docs.
fn gateway_markdown() -> String {
    use route::{Requirement, satisfies};
    let org = OrganizationId::from_stored("org".to_owned());
    let own = |t: EntityType| match t {
        EntityType::Organization => EntityId::from(&org),
        _ => EntityId::from_stored("x".into()),
    };
    let mut table = String::from(
        "| role held (on entity E) | meets `tokend.required_role` on E | meets requirements on other entities of the organization |\n|---|---|---|\n",
    );
    for held in Role::ALL {
        let held_type = EntityType::ALL
            .into_iter()
            .find(|e| held.fits(*e))
            .unwrap_or(EntityType::Organization);
        let deployment = held_type
            .lives_in_deployment()
            .then(|| EntityId::from_stored("dep".into()));
        let roles = [RoleBinding::from_stored(
            held_type,
            own(held_type),
            held,
            deployment,
        )];
        let meets = |required: Role, entity_type: EntityType, entity_id: EntityId| {
            satisfies(
                &org,
                &roles,
                &Requirement::Role {
                    organization: org.clone(),
                    role: required,
                    entity_type,
                    entity_id,
                },
            )
        };
        let same: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| r.fits(held_type) && meets(*r, held_type, own(held_type)))
            .map(Role::as_str)
            .collect();
        let elsewhere = Role::ALL.into_iter().all(|r| {
            EntityType::ALL
                .into_iter()
                .filter(|t| r.fits(*t))
                .all(|t| meets(r, t, EntityId::from_stored("elsewhere".into())))
        });
        let _ = writeln!(
            table,
            "| {held} ({held_type}) | {} | {} |",
            same.join(", "),
            if elsewhere {
                "every role, on every entity"
            } else {
                "—"
            }
        );
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
        ("gateway", gateway_markdown()),
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
