//! The audit trail: what happened to a token, by whom, from where.

use super::ids::TokenId;
use super::subject::Subject;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Created.
    Create,
    /// Name, description or enabled changed.
    Update,
    /// Roles replaced.
    UpdateRoles,
    /// New secret issued.
    Rotate,
    /// Deleted.
    Delete,
    /// A wrong or unusable secret naming the token was presented
    /// (aggregated per client address and flush interval).
    AuthenticationFailed,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [Self; 6] = [
        Self::Create,
        Self::Update,
        Self::UpdateRoles,
        Self::Rotate,
        Self::Delete,
        Self::AuthenticationFailed,
    ];

    /// The stored and printed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::UpdateRoles => "UPDATE_ROLES",
            Self::Rotate => "ROTATE",
            Self::Delete => "DELETE",
            Self::AuthenticationFailed => "AUTHENTICATION_FAILED",
        }
    }

    /// Parses the stored spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Who did a mutation, from where, when: written with the mutation in one
/// transaction.
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    /// The subject acting.
    pub subject: &'a Subject,
    /// Its client address, if known.
    pub ip: Option<&'a str>,
    /// When (Unix seconds).
    pub at: i64,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Increasing id.
    pub id: i64,
    /// What happened.
    pub action: AuditAction,
    /// The token.
    pub token_id: TokenId,
    /// Who did it; `None` for failed authentications.
    pub actor: Option<Subject>,
    /// From where.
    pub ip: Option<String>,
    /// When (Unix seconds; the last occurrence for aggregates).
    pub occurred_at: i64,
    /// What changed, in words. Never a secret.
    pub detail: String,
    /// Occurrences aggregated (1 for mutations).
    pub count: i32,
}
