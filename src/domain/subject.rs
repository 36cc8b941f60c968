//! Subjects: who created or changed a token.

use sha2::{Digest, Sha256};

use super::error::{FieldViolation, check_text};
use super::ids::TokenId;

/// The default user recorded by the bootstrap command line.
pub const SYSTEM_USERNAME: &str = "system";

/// The kind of subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectType {
    /// A person (or the bootstrap command line acting for one).
    User,
    /// An API token acting on its own behalf.
    ServiceKey,
}

impl SubjectType {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::ServiceKey => "SERVICEKEY",
        }
    }

    /// Parses the contract's spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::User, Self::ServiceKey]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
}

/// A subject as stored and shown in `createdBy` / `updatedBy`. Subjects are
/// deduplicated by `id`, which is derived from what identifies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Stable id: the token id for a service key, a digest of the username
    /// for a user.
    pub id: String,
    /// User or service key.
    pub subject_type: SubjectType,
    /// For a user, the username; empty otherwise.
    pub username: String,
    /// For a user, the full name if known.
    pub full_name: String,
    /// Avatar URL, if known.
    pub avatar_url: String,
    /// For a service key, the token's name when it last acted.
    pub api_token_name: String,
}

impl Subject {
    /// The subject for an API token acting as a caller.
    pub fn service_key(token_id: &TokenId, token_name: &str) -> Self {
        Self {
            id: token_id.as_str().to_owned(),
            subject_type: SubjectType::ServiceKey,
            username: String::new(),
            full_name: String::new(),
            avatar_url: String::new(),
            api_token_name: token_name.to_owned(),
        }
    }

    /// A user subject, given by the bootstrap command line.
    pub fn user(username: &str, full_name: &str) -> Result<Self, FieldViolation> {
        check_text("username", username, 1, 255)?;
        check_text("fullName", full_name, 0, 255)?;
        let digest = Sha256::digest(username.as_bytes());
        let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            id: format!("user-{hex}"),
            subject_type: SubjectType::User,
            username: username.to_owned(),
            full_name: full_name.to_owned(),
            avatar_url: String::new(),
            api_token_name: String::new(),
        })
    }

    /// How the subject reads as the `owner` of a token in Lookup.
    pub fn display_name(&self) -> &str {
        match self.subject_type {
            SubjectType::User => &self.username,
            SubjectType::ServiceKey => &self.api_token_name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_stable_and_distinct() {
        let a = Subject::user("alice", "Alice").unwrap();
        assert_eq!(a.id, Subject::user("alice", "").unwrap().id);
        assert_ne!(a.id, Subject::user("bob", "").unwrap().id);
        assert!(Subject::user("", "").is_err());
        assert_eq!(a.display_name(), "alice");
    }
}
