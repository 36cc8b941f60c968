//! `Debug` for the generated messages that carry a secret (`build.rs` skips
//! their derived one): every field but the secret, which prints as
//! `[redacted]` when set, so a stray `{:?}` in a log line cannot leak it.

use std::fmt;

use crate::pb;

/// What a secret field prints as.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "[redacted]" }
}

impl fmt::Debug for pb::ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("created_at", &self.created_at)
            .field("description", &self.description)
            .field("id", &self.id)
            .field("name", &self.name)
            .field("short_token", &self.short_token)
            .field("start_at", &self.start_at)
            .field("type", &self.r#type)
            .field("updated_at", &self.updated_at)
            .field("created_by", &self.created_by)
            .field("end_at", &self.end_at)
            .field("expiry_period_in_days", &self.expiry_period_in_days)
            .field("last_used_at", &self.last_used_at)
            .field("roles", &self.roles)
            .field("token", &self.token.as_deref().map(redacted))
            .field("updated_by", &self.updated_by)
            .field("kind", &self.kind)
            .field("last_rotated_at", &self.last_rotated_at)
            .finish()
    }
}

impl fmt::Debug for pb::ApiTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiTokenSecret")
            .field("token", &redacted(&self.token))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::pb;

    #[test]
    fn debug_never_prints_a_secret() {
        let secret = "tokend.01m882maqep8bczagn16tx4er9.UWDI6GOLXIAB5472VMDCQLY2";
        let token = pb::ApiToken {
            id: "01m882maqep8bczagn16tx4er9".into(),
            name: "ci".into(),
            token: Some(secret.into()),
            ..Default::default()
        };
        let printed = format!("{token:?}");
        assert!(!printed.contains("UWDI6GOL"), "{printed}");
        assert!(
            printed.contains("[redacted]") && printed.contains("ci"),
            "{printed}"
        );
        let looked_up = pb::ApiTokenSecret {
            token: secret.into(),
        };
        assert_eq!(
            format!("{looked_up:?}"),
            r#"ApiTokenSecret { token: "[redacted]" }"#
        );
        let empty = pb::ApiToken::default();
        assert!(format!("{empty:?}").contains("token: None"));
    }
}
