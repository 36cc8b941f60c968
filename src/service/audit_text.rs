//! The words of the audit trail: what each mutation writes as its event's
//! detail. Never a secret (a `shortToken` is not one).

use crate::domain::role::RoleBinding;
use crate::domain::time::{rfc3339, rfc3339_millis};
use crate::domain::token::{GracePeriod, NewToken, TokenUpdate};

/// CREATE: what was created, its role, its end of validity and its secret's
/// display form.
pub fn created(new: &NewToken, short_token: &str) -> String {
    format!(
        "created {} token {:?} on {} with role {}; {}; secret {}",
        new.token_type,
        new.name.as_str(),
        new.entity_id,
        new.role.role(),
        match new.end_at() {
            Some(end) => format!("expires {}", rfc3339(end)),
            None => "never expires".to_owned(),
        },
        short_token
    )
}

/// UPDATE: each field that was given, the old and new name in full.
pub fn updated(old_name: &str, update: &TokenUpdate) -> String {
    let mut changes = Vec::new();
    if let Some(name) = &update.name {
        changes.push(format!("name {:?} -> {:?}", old_name, name.as_str()));
    }
    if update.description.is_some() {
        changes.push("description changed".to_owned());
    }
    if let Some(enabled) = update.enabled {
        changes.push(if enabled { "enabled" } else { "disabled" }.to_owned());
    }
    changes.join("; ")
}

/// UPDATE_ROLES: the new set.
pub fn roles_set(bindings: &[RoleBinding]) -> String {
    let described: Vec<String> = bindings
        .iter()
        .map(|b| match b.deployment_id() {
            Some(dep) => format!(
                "{} on {} {} in {}",
                b.role(),
                b.entity_type(),
                b.entity_id(),
                dep
            ),
            None => format!("{} on {} {}", b.role(), b.entity_type(), b.entity_id()),
        })
        .collect();
    format!("roles set to [{}]", described.join(", "))
}

/// ROTATE: the new secret's display form and how long older ones work.
pub fn rotated(short_token: &str, grace: GracePeriod, grace_end_ms: i64) -> String {
    if grace.seconds() == 0 {
        format!("new secret {short_token}; older secrets stopped working at once")
    } else {
        format!(
            "new secret {short_token}; older secrets work until {}",
            rfc3339_millis(grace_end_ms)
        )
    }
}

/// DELETE: the token's name.
pub fn deleted(name: &str) -> String {
    format!("deleted token {name:?}")
}
