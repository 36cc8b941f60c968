//! API tokens: what a client may create, and what the store returns.

use std::fmt;

use super::error::{FieldViolation, Violations, check_text};
use super::ids::{EntityId, OrganizationId, TokenId};
use super::role::{EntityType, Role, RoleBinding};
use super::subject::Subject;
use super::time::SECONDS_PER_DAY;

/// Longest token name, in characters after trimming.
pub const MAX_NAME_CHARS: usize = 255;
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

/// A token name: trimmed, 1 to 255 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Parses a name given in `field`, trimming surrounding whitespace.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        let trimmed = value.trim();
        check_text(field, trimmed, 1, MAX_NAME_CHARS)?;
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
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
        Some(t) if (t - now).abs() <= MAX_START_OFFSET_SECONDS => Ok(t),
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
        let long = "n".repeat(256);
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
        let name = "n".repeat(255);
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
