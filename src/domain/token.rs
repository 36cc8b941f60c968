//! API tokens: what a client may create, and what the store returns.

use std::fmt;

use super::error::{FieldViolation, Violations, check_text};
use super::ids::{EntityId, OrganizationId, TokenId};
use super::role::{EntityType, Role, RoleBinding};
use super::subject::Subject;
use super::time::SECONDS_PER_DAY;

/// Longest token name, in characters after trimming (Astronomer's bound).
pub const MAX_NAME_CHARS: usize = 256;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Longest expiry period, in days (ten years, as Astronomer allows).
pub const MAX_EXPIRY_DAYS: i32 = 3650;
/// How far from now `startAt` may lie, in either direction.
const MAX_START_OFFSET_SECONDS: i64 = MAX_EXPIRY_DAYS as i64 * SECONDS_PER_DAY;

/// The level of the platform a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// The organization as a whole.
    Organization,
    /// One workspace.
    Workspace,
    /// One deployment.
    Deployment,
}

impl TokenType {
    /// Every type.
    pub const ALL: [Self; 3] = [Self::Organization, Self::Workspace, Self::Deployment];

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        self.entity_type().as_str()
    }

    /// Parses the contract's spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The kind of entity a token of this type belongs to.
    pub fn entity_type(self) -> EntityType {
        match self {
            Self::Organization => EntityType::Organization,
            Self::Workspace => EntityType::Workspace,
            Self::Deployment => EntityType::Deployment,
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TokenKind {
    /// An ordinary API token.
    #[default]
    Standard,
    /// Direct access to a deployment's API.
    DirectAccess,
}

impl TokenKind {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "STANDARD",
            Self::DirectAccess => "DIRECT_ACCESS",
        }
    }

    /// Parses the contract's spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Standard, Self::DirectAccess]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// A token name: trimmed, 1 to 256 characters, none of them a control
/// character, a line or paragraph separator, or an invisible format
/// character (zero-width spaces and joiners, bidi overrides and isolates,
/// tags): names appear in audit trails, logs and consoles, where such
/// characters hide or reorder what a reader sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Parses a name given in `field`, trimming surrounding whitespace.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        let trimmed = value.trim();
        check_text(field, trimmed, 1, MAX_NAME_CHARS)?;
        if trimmed.chars().any(hides_text) {
            return Err(FieldViolation::new(
                field,
                "must not contain control, invisible or text-direction characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that hide or reorder text when displayed.
fn hides_text(c: char) -> bool {
    use unicode_general_category::{GeneralCategory, get_general_category};
    c.is_control()
        || matches!(
            get_general_category(c),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

/// A token description: at most 1000 characters, no control characters but
/// tab and newline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    /// Parses a description given in `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        check_text(field, value, 0, MAX_DESCRIPTION_CHARS)?;
        Ok(Self(value.to_owned()))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An expiry period: 1 to 3650 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryDays(i32);

impl ExpiryDays {
    /// Parses an expiry period given in `field`.
    pub fn parse(field: &str, days: i32) -> Result<Self, FieldViolation> {
        if (1..=MAX_EXPIRY_DAYS).contains(&days) {
            Ok(Self(days))
        } else {
            Err(FieldViolation::new(
                field,
                format!("must be between 1 and {MAX_EXPIRY_DAYS} days"),
            ))
        }
    }

    /// The period in days.
    pub fn days(self) -> i32 {
        self.0
    }

    /// The period in seconds.
    pub fn seconds(self) -> i64 {
        i64::from(self.0) * SECONDS_PER_DAY
    }
}

/// A Create request as the client sent it, enums already decoded (`None` for
/// unset or unknown values).
#[derive(Debug, Clone, Default)]
pub struct CreateTokenInput<'a> {
    /// `name`.
    pub name: &'a str,
    /// `description`.
    pub description: &'a str,
    /// `type`; `None` when unset.
    pub token_type: Option<TokenType>,
    /// `role`.
    pub role: &'a str,
    /// `entityId`; empty when unset.
    pub entity_id: &'a str,
    /// `tokenExpiryPeriodInDays`; `None` when absent.
    pub expiry_days: Option<i32>,
    /// `kind`; `None` for the default.
    pub kind: Option<TokenKind>,
    /// `startAt` in Unix seconds; `None` for now.
    pub start_at: Option<i64>,
}

/// A validated token to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The organization it belongs to.
    pub organization_id: OrganizationId,
    /// Its name.
    pub name: TokenName,
    /// Its description.
    pub description: Description,
    /// Its type.
    pub token_type: TokenType,
    /// The organization, workspace or deployment it belongs to.
    pub entity_id: EntityId,
    /// Its kind.
    pub kind: TokenKind,
    /// Its one initial role, on the entity it belongs to.
    pub role: RoleBinding,
    /// Its expiry period, if it expires.
    pub expiry: Option<ExpiryDays>,
    /// When it becomes valid (Unix seconds).
    pub start_at: i64,
}

impl NewToken {
    /// Validates a Create request for `organization_id` at time `now`,
    /// reporting every violation at once.
    pub fn parse(
        organization_id: OrganizationId,
        input: &CreateTokenInput<'_>,
        now: i64,
    ) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Violations::default();
        let name = v.check(TokenName::parse("name", input.name));
        let description = v.check(Description::parse("description", input.description));
        if input.token_type.is_none() {
            v.push(FieldViolation::new(
                "type",
                "is required: ORGANIZATION, WORKSPACE or DEPLOYMENT",
            ));
        }
        let role = v.check(Role::parse("role", input.role));
        let entity_id = input
            .token_type
            .and_then(|t| v.check(scope_entity(&organization_id, t, input.entity_id)));
        let expiry = match input.expiry_days {
            Some(days) => v.check(ExpiryDays::parse("tokenExpiryPeriodInDays", days).map(Some)),
            None => Some(None),
        };
        let start_at = v.check(start_at(input.start_at, now));
        let binding = match (input.token_type, &entity_id, role) {
            (Some(t), Some(entity), Some(role)) => v.check(
                RoleBinding::new("", t.entity_type(), entity.clone(), role, None).map_err(|_| {
                    FieldViolation::new("role", format!("{role} does not fit a {t} token"))
                }),
            ),
            _ => None,
        };
        match (
            name,
            description,
            input.token_type,
            entity_id,
            binding,
            expiry,
            start_at,
        ) {
            (
                Some(name),
                Some(description),
                Some(token_type),
                Some(entity_id),
                Some(role),
                Some(expiry),
                Some(start_at),
            ) if v.is_empty() => Ok(Self {
                organization_id,
                name,
                description,
                token_type,
                entity_id,
                kind: input.kind.unwrap_or_default(),
                role,
                expiry,
                start_at,
            }),
            _ => Err(v.into_vec()),
        }
    }

    /// When the token expires: `startAt + expiryPeriodInDays`.
    pub fn end_at(&self) -> Option<i64> {
        self.expiry
            .map(|e| self.start_at.saturating_add(e.seconds()))
    }
}

/// The entity a token of type `token_type` belongs to: the organization
/// itself, or the workspace or deployment named by `entityId`.
fn scope_entity(
    organization_id: &OrganizationId,
    token_type: TokenType,
    entity_id: &str,
) -> Result<EntityId, FieldViolation> {
    match token_type {
        TokenType::Organization
            if entity_id.is_empty() || entity_id == organization_id.as_str() =>
        {
            Ok(EntityId::from(organization_id))
        }
        TokenType::Organization => Err(FieldViolation::new(
            "entityId",
            "must be empty (or the organization's id) for ORGANIZATION tokens",
        )),
        TokenType::Workspace | TokenType::Deployment if entity_id.is_empty() => Err(
            FieldViolation::new("entityId", format!("is required for {token_type} tokens")),
        ),
        TokenType::Workspace | TokenType::Deployment => EntityId::parse("entityId", entity_id),
    }
}

fn start_at(requested: Option<i64>, now: i64) -> Result<i64, FieldViolation> {
    match requested {
        None => Ok(now),
        // abs_diff: `t - now` overflows for a startAt near i64::MIN or MAX
        // (a panic in debug builds, a wrong answer in release ones).
        Some(t) if t.abs_diff(now) <= MAX_START_OFFSET_SECONDS.unsigned_abs() => Ok(t),
        Some(_) => Err(FieldViolation::new(
            "startAt",
            format!("must be within {MAX_EXPIRY_DAYS} days of now"),
        )),
    }
}

/// An API token as the store returns it. The secret is never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its id.
    pub id: TokenId,
    /// The organization it belongs to.
    pub organization_id: OrganizationId,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its type.
    pub token_type: TokenType,
    /// The organization, workspace or deployment it belongs to.
    pub entity_id: EntityId,
    /// Its kind.
    pub kind: TokenKind,
    /// The non-secret display form of its current secret.
    pub short_token: String,
    /// Whether it may be used.
    pub enabled: bool,
    /// When it becomes valid (Unix seconds).
    pub start_at: i64,
    /// When it expires (Unix seconds), if it does.
    pub end_at: Option<i64>,
    /// Its expiry period in days, if it expires.
    pub expiry_days: Option<i32>,
    /// When it was created (Unix seconds).
    pub created_at: i64,
    /// When it was last changed (Unix seconds).
    pub updated_at: i64,
    /// Who created it.
    pub created_by: Subject,
    /// Who last changed it.
    pub updated_by: Subject,
    /// When it was last used (Unix seconds), if ever.
    pub last_used_at: Option<i64>,
    /// The client address it was last used from, if ever.
    pub last_used_ip: Option<String>,
    /// When it last got a new secret (Unix seconds), if ever.
    pub last_rotated_at: Option<i64>,
    /// Its roles.
    pub roles: Vec<RoleBinding>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn org() -> OrganizationId {
        OrganizationId::parse("organizationId", "org1").unwrap()
    }

    fn valid() -> CreateTokenInput<'static> {
        CreateTokenInput {
            name: "  ci token ",
            description: "for CI",
            token_type: Some(TokenType::Workspace),
            role: "WORKSPACE_MEMBER",
            entity_id: "ws1",
            expiry_days: Some(30),
            kind: None,
            start_at: None,
        }
    }

    fn fields(input: CreateTokenInput<'_>) -> Vec<String> {
        NewToken::parse(org(), &input, NOW)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn a_start_at_at_the_ends_of_time_is_refused_not_overflowed() {
        for start_at in [i64::MIN, i64::MIN + 1, i64::MAX, NOW + 3651 * 86_400] {
            let input = CreateTokenInput {
                start_at: Some(start_at),
                ..valid()
            };
            assert_eq!(fields(input), ["startAt"], "{start_at}");
        }
    }

    #[test]
    fn valid_input_parses_with_defaults() {
        let token = NewToken::parse(org(), &valid(), NOW).unwrap();
        assert_eq!(token.name.as_str(), "ci token");
        assert_eq!(token.kind, TokenKind::Standard);
        assert_eq!(token.start_at, NOW);
        assert_eq!(token.end_at(), Some(NOW + 30 * SECONDS_PER_DAY));
        assert_eq!(token.role.entity_id().as_str(), "ws1");
        assert_eq!(token.role.role(), Role::WorkspaceMember);
    }

    #[test]
    fn organization_tokens_belong_to_the_organization() {
        let input = CreateTokenInput {
            token_type: Some(TokenType::Organization),
            role: "ORGANIZATION_OWNER",
            entity_id: "",
            expiry_days: None,
            ..valid()
        };
        let token = NewToken::parse(org(), &input, NOW).unwrap();
        assert_eq!(token.entity_id.as_str(), "org1");
        assert_eq!(token.end_at(), None);
        let with_other = CreateTokenInput {
            entity_id: "ws1",
            ..input
        };
        assert_eq!(fields(with_other), ["entityId"]);
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(
            fields(CreateTokenInput {
                name: "   ",
                ..valid()
            }),
            ["name"]
        );
        let long = "n".repeat(257);
        assert_eq!(
            fields(CreateTokenInput {
                name: &long,
                ..valid()
            }),
            ["name"]
        );
        let desc = "d".repeat(1001);
        assert_eq!(
            fields(CreateTokenInput {
                description: &desc,
                ..valid()
            }),
            ["description"]
        );
        assert_eq!(
            fields(CreateTokenInput {
                token_type: None,
                ..valid()
            }),
            ["type"]
        );
        assert_eq!(
            fields(CreateTokenInput {
                role: "",
                ..valid()
            }),
            ["role"]
        );
        assert_eq!(
            fields(CreateTokenInput {
                role: "ORGANIZATION_OWNER",
                ..valid()
            }),
            ["role"]
        );
        assert_eq!(
            fields(CreateTokenInput {
                entity_id: "",
                ..valid()
            }),
            ["entityId"]
        );
        for days in [0, -1, 3651] {
            let input = CreateTokenInput {
                expiry_days: Some(days),
                ..valid()
            };
            assert_eq!(fields(input), ["tokenExpiryPeriodInDays"]);
        }
        let far = NOW + 3651 * SECONDS_PER_DAY;
        assert_eq!(
            fields(CreateTokenInput {
                start_at: Some(far),
                ..valid()
            }),
            ["startAt"]
        );
    }

    #[test]
    fn names_refuse_characters_that_hide_text() {
        for bad in [
            "ci\u{200b}token",
            "ci\u{200d}",
            "admin\u{202e}nimda",
            "\u{2066}ci\u{2069}",
            "ci\u{feff}",
            "tag\u{e0041}",
            "soft\u{ad}hyphen",
            "line\u{2028}break",
            "new\nline",
            "tab\tbed",
        ] {
            assert!(TokenName::parse("name", bad).is_err(), "{bad:?}");
        }
        for good in [
            "ci token",
            "déploiement",
            "デプロイ",
            "ci-🚀",
            "a.b_c (prod)",
        ] {
            assert!(TokenName::parse("name", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn all_violations_are_reported_together() {
        let input = CreateTokenInput {
            name: "",
            description: "",
            token_type: None,
            role: "NOPE",
            entity_id: "",
            expiry_days: Some(0),
            kind: None,
            start_at: None,
        };
        assert_eq!(
            fields(input),
            ["name", "type", "role", "tokenExpiryPeriodInDays"]
        );
    }

    #[test]
    fn boundaries_are_inclusive() {
        let name = "n".repeat(256);
        let desc = "d".repeat(1000);
        let input = CreateTokenInput {
            name: &name,
            description: &desc,
            expiry_days: Some(3650),
            ..valid()
        };
        assert!(NewToken::parse(org(), &input, NOW).is_ok());
        let one = CreateTokenInput {
            expiry_days: Some(1),
            ..valid()
        };
        assert!(NewToken::parse(org(), &one, NOW).is_ok());
    }
}

/// Most role bindings one token may hold.
pub const MAX_ROLES: usize = 100;
/// Longest rotation grace period: 24 hours.
pub const MAX_GRACE_SECONDS: i32 = 86_400;

/// A token's complete role set, checked against the token's own scope:
/// exactly one binding on the entity the token belongs to, and nothing the
/// token's type cannot hold (see `docs/authorization.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet(Vec<RoleBinding>);

impl RoleSet {
    /// Checks `bindings` (named `roles[i]` in violations) for a token of
    /// `org` with type `token_type` belonging to `entity_id`.
    pub fn parse(
        org: &OrganizationId,
        token_type: TokenType,
        entity_id: &EntityId,
        bindings: Vec<RoleBinding>,
    ) -> Result<Self, FieldViolation> {
        if bindings.is_empty() {
            return Err(FieldViolation::new("roles", "must hold at least one role"));
        }
        if bindings.len() > MAX_ROLES {
            return Err(FieldViolation::new(
                "roles",
                format!("must hold at most {MAX_ROLES} roles"),
            ));
        }
        for (i, binding) in bindings.iter().enumerate() {
            let field = format!("roles[{i}]");
            if let Some(j) = bindings[..i].iter().position(|b| same_entity(b, binding)) {
                return Err(FieldViolation::new(
                    field,
                    format!("names the same entity as roles[{j}]"),
                ));
            }
            check_binding_fits(&field, org, token_type, entity_id, binding)?;
        }
        let own = token_type.entity_type();
        let on_own_entity = bindings
            .iter()
            .filter(|b| b.entity_type() == own && b.entity_id() == entity_id)
            .count();
        if on_own_entity != 1 {
            return Err(FieldViolation::new(
                "roles",
                format!(
                    "must include exactly one {own} role on the token's own {own} ({entity_id})"
                ),
            ));
        }
        Ok(Self(bindings))
    }

    /// The bindings.
    pub fn bindings(&self) -> &[RoleBinding] {
        &self.0
    }
}

fn same_entity(a: &RoleBinding, b: &RoleBinding) -> bool {
    a.entity_type() == b.entity_type()
        && a.entity_id() == b.entity_id()
        && a.deployment_id() == b.deployment_id()
}

/// What a token of `token_type` belonging to `entity_id` may hold:
/// organization tokens anything in their organization; workspace tokens
/// their own workspace and any deployment or DAG role; deployment tokens
/// their own deployment and DAG roles inside it.
fn check_binding_fits(
    field: &str,
    org: &OrganizationId,
    token_type: TokenType,
    entity_id: &EntityId,
    binding: &RoleBinding,
) -> Result<(), FieldViolation> {
    let refuse = |what: &str| {
        Err(FieldViolation::new(
            format!("{field}.entityId"),
            what.to_owned(),
        ))
    };
    match (token_type, binding.entity_type()) {
        (TokenType::Organization, EntityType::Organization)
            if binding.entity_id().as_str() != org.as_str() =>
        {
            refuse("an ORGANIZATION role must be on the token's own organization")
        }
        (_, EntityType::Organization) if token_type != TokenType::Organization => {
            Err(FieldViolation::new(
                format!("{field}.entityType"),
                format!("a {token_type} token cannot hold ORGANIZATION roles"),
            ))
        }
        (TokenType::Workspace, EntityType::Workspace) if binding.entity_id() != entity_id => {
            refuse("a WORKSPACE token can hold WORKSPACE roles only on its own workspace")
        }
        (TokenType::Deployment, EntityType::Workspace) => Err(FieldViolation::new(
            format!("{field}.entityType"),
            "a DEPLOYMENT token cannot hold WORKSPACE roles",
        )),
        (TokenType::Deployment, EntityType::Deployment) if binding.entity_id() != entity_id => {
            refuse("a DEPLOYMENT token can hold DEPLOYMENT roles only on its own deployment")
        }
        (TokenType::Deployment, EntityType::Dag | EntityType::DagTag)
            if binding.deployment_id() != Some(entity_id) =>
        {
            Err(FieldViolation::new(
                format!("{field}.deploymentId"),
                "a DEPLOYMENT token can hold DAG roles only inside its own deployment",
            ))
        }
        _ => Ok(()),
    }
}

/// The changes of an Update: each present field replaces its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUpdate {
    /// New name.
    pub name: Option<TokenName>,
    /// New description.
    pub description: Option<Description>,
    /// New enabled state.
    pub enabled: Option<bool>,
}

impl TokenUpdate {
    /// Validates an Update; at least one field must be present.
    pub fn parse(
        name: Option<&str>,
        description: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Self, Vec<FieldViolation>> {
        if name.is_none() && description.is_none() && enabled.is_none() {
            return Err(vec![FieldViolation::new(
                "body",
                "nothing to update: give at least one of name, description, enabled",
            )]);
        }
        let mut v = Violations::default();
        let name = name
            .and_then(|n| v.check(TokenName::parse("name", n)).map(Some))
            .flatten();
        let description = description
            .and_then(|d| v.check(Description::parse("description", d)).map(Some))
            .flatten();
        if v.is_empty() {
            Ok(Self {
                name,
                description,
                enabled,
            })
        } else {
            Err(v.into_vec())
        }
    }
}

/// How long a rotated-out secret keeps working: 0 (not at all) to 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracePeriod(i32);

impl GracePeriod {
    /// Parses `gracePeriodSeconds`.
    pub fn parse(seconds: i32) -> Result<Self, FieldViolation> {
        if (0..=MAX_GRACE_SECONDS).contains(&seconds) {
            Ok(Self(seconds))
        } else {
            Err(FieldViolation::new(
                "gracePeriodSeconds",
                format!("must be between 0 and {MAX_GRACE_SECONDS} (24 hours)"),
            ))
        }
    }

    /// The period in seconds.
    pub fn seconds(self) -> i64 {
        i64::from(self.0)
    }
}

#[cfg(test)]
mod lifecycle_tests {
    use super::*;

    fn org() -> OrganizationId {
        OrganizationId::parse("o", "org1").unwrap()
    }
    fn id(s: &str) -> EntityId {
        EntityId::from_stored(s.into())
    }
    fn b(t: EntityType, e: &str, role: Role, dep: Option<&str>) -> RoleBinding {
        RoleBinding::from_stored(t, id(e), role, dep.map(id))
    }

    #[test]
    fn organization_token_may_hold_roles_anywhere_in_its_organization() {
        let set = RoleSet::parse(
            &org(),
            TokenType::Organization,
            &id("org1"),
            vec![
                b(
                    EntityType::Organization,
                    "org1",
                    Role::OrganizationMember,
                    None,
                ),
                b(EntityType::Workspace, "ws1", Role::WorkspaceOwner, None),
                b(EntityType::Deployment, "d1", Role::DeploymentAdmin, None),
                b(EntityType::DagTag, "nightly", Role::DagViewer, Some("d1")),
            ],
        );
        assert!(set.is_ok(), "{set:?}");
    }

    #[test]
    fn role_set_rules_name_their_field() {
        let ws = |bindings| RoleSet::parse(&org(), TokenType::Workspace, &id("ws1"), bindings);
        let own = b(EntityType::Workspace, "ws1", Role::WorkspaceMember, None);
        assert_eq!(ws(vec![]).unwrap_err().field, "roles");
        assert_eq!(
            ws(vec![
                own.clone(),
                b(
                    EntityType::Organization,
                    "org1",
                    Role::OrganizationOwner,
                    None
                )
            ])
            .unwrap_err()
            .field,
            "roles[1].entityType"
        );
        assert_eq!(
            ws(vec![
                own.clone(),
                b(EntityType::Workspace, "ws2", Role::WorkspaceMember, None)
            ])
            .unwrap_err()
            .field,
            "roles[1].entityId"
        );
        assert_eq!(
            ws(vec![own.clone(), own.clone()]).unwrap_err().field,
            "roles[1]"
        );
        assert_eq!(
            ws(vec![b(
                EntityType::Deployment,
                "d1",
                Role::DeploymentAdmin,
                None
            )])
            .unwrap_err()
            .field,
            "roles"
        );
        let many: Vec<RoleBinding> = (0..=MAX_ROLES)
            .map(|i| {
                b(
                    EntityType::Deployment,
                    &format!("d{i}"),
                    Role::DeploymentAdmin,
                    None,
                )
            })
            .collect();
        assert_eq!(ws(many).unwrap_err().field, "roles");
        let dep = |bindings| RoleSet::parse(&org(), TokenType::Deployment, &id("d1"), bindings);
        let own_dep = b(EntityType::Deployment, "d1", Role::DeploymentAdmin, None);
        assert!(
            dep(vec![
                own_dep.clone(),
                b(EntityType::Dag, "etl", Role::DagAuthor, Some("d1"))
            ])
            .is_ok()
        );
        assert_eq!(
            dep(vec![
                own_dep,
                b(EntityType::Dag, "etl", Role::DagAuthor, Some("d2"))
            ])
            .unwrap_err()
            .field,
            "roles[1].deploymentId"
        );
    }

    #[test]
    fn update_needs_a_field_and_valid_values() {
        assert_eq!(
            TokenUpdate::parse(None, None, None).unwrap_err()[0].field,
            "body"
        );
        assert_eq!(
            TokenUpdate::parse(Some(" "), None, None).unwrap_err()[0].field,
            "name"
        );
        let long = "d".repeat(1001);
        assert_eq!(
            TokenUpdate::parse(None, Some(&long), None).unwrap_err()[0].field,
            "description"
        );
        let ok = TokenUpdate::parse(None, Some(""), Some(false)).unwrap();
        assert_eq!(ok.enabled, Some(false));
        assert_eq!(ok.description, Some(Description::default()));
    }

    #[test]
    fn grace_period_bounds() {
        assert!(GracePeriod::parse(0).is_ok());
        assert!(GracePeriod::parse(86_400).is_ok());
        assert_eq!(
            GracePeriod::parse(86_401).unwrap_err().field,
            "gracePeriodSeconds"
        );
        assert!(GracePeriod::parse(-1).is_err());
    }
}
