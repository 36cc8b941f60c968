//! One Settings struct, validated once at start-up.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cache::CacheSettings;
use crate::domain::secret::TokenPrefix;
use crate::store::{DatabaseKind, StoreOptions};

/// A database URL. `Debug` and `Display` show only the database kind, so
/// credentials in the URL never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    kind: DatabaseKind,
}

impl DatabaseUrl {
    /// Parses a `sqlite:` or `postgres://` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let kind = DatabaseKind::of_url(url).ok_or_else(|| {
            "database URL must start with sqlite:, postgres:// or postgresql://".to_owned()
        })?;
        Ok(Self {
            url: url.to_owned(),
            kind,
        })
    }

    /// The URL, for the one place that connects.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The database kind.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}://[redacted])", self.kind.as_str())
    }
}

/// Everything `tokend serve` needs, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// The database.
    pub database_url: DatabaseUrl,
    /// Pool settings.
    pub store: StoreOptions,
    /// The fixed first part of every secret.
    pub token_prefix: TokenPrefix,
    /// How often buffered usage (`lastUsedAt`) is written.
    pub usage_flush_interval: Duration,
    /// How often health pings the database.
    pub health_check_interval: Duration,
    /// The credential cache.
    pub auth_cache: CacheSettings,
}

impl Settings {
    /// Settings for `url` with every other value at its default.
    pub fn with_database(url: DatabaseUrl) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            database_url: url,
            store: StoreOptions::default(),
            token_prefix: TokenPrefix::default(),
            usage_flush_interval: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(2),
            auth_cache: CacheSettings::default(),
        }
    }
}

/// Parses a duration written as a number with a unit: `250ms`, `5s`, `2m`,
/// `1h`. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 250ms, 5s, 2m or 1h"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{text:?} has an unknown unit; use ms, s, m or h")),
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5 s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1d").is_err());
    }

    #[test]
    fn database_url_debug_hides_credentials() {
        let url = DatabaseUrl::parse("postgres://user:hunter2@db:5432/tokend").unwrap();
        assert_eq!(format!("{url:?}"), "DatabaseUrl(postgres://[redacted])");
        assert!(DatabaseUrl::parse("mysql://x").is_err());
    }
}
