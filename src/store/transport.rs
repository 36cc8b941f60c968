//! Whether a PostgreSQL URL protects the connection enough to trust the
//! database's answers: tokend authenticates callers by what the database says,
//! so whoever can intercept that connection can answer as any token.
//!
//! A URL is read exactly as sqlx reads it (`PgConnectOptions`, including the
//! `PG*` environment variables it falls back on), then classified:
//! - **local**: a Unix socket (a `host` beginning with `/`, as a `host=/dir`
//!   parameter or a percent-encoded path in the authority), `localhost`, an
//!   address in 127.0.0.0/8, or `::1`. Anything goes: the traffic never leaves
//!   the machine.
//! - **remote**: every other host, including every other name. A name is not
//!   resolved to decide: where it resolves can change, and resolving it is
//!   what an attacker on the path may control. Only `sslmode=verify-full`
//!   (recommended: it also checks the host name) or `verify-ca` is accepted,
//!   unless the operator opts out.

use std::net::IpAddr;
use std::path::Path;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The flag (and its environment variable) that accepts an unverified
/// connection to a remote PostgreSQL; named in the refusal.
pub const ALLOW_INSECURE_FLAG: &str =
    "--database-allow-insecure-transport (TOKEND_DATABASE_ALLOW_INSECURE_TRANSPORT=true)";

/// How a PostgreSQL connection reaches the server and whether it is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTransport {
    /// Unix socket or loopback: never leaves the machine.
    Local,
    /// A remote host whose certificate sqlx verifies (`verify-ca`/`verify-full`).
    Verified,
    /// A remote host over cleartext or TLS without certificate verification;
    /// `sslmode` says which.
    Unverified {
        /// The effective `sslmode`.
        ssl_mode: &'static str,
    },
}

/// Reads `url` as sqlx will and classifies it. Errors never echo the URL.
pub fn postgres_transport(url: &str) -> Result<PgTransport, String> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    Ok(classify(
        options.get_host(),
        options.get_socket().map(|p| p.as_path()),
        options.get_ssl_mode(),
    ))
}

/// Refuses `url` when it reaches a remote host without certificate
/// verification, unless `allow_insecure`. Returns the classification.
pub fn check_postgres_transport(url: &str, allow_insecure: bool) -> Result<PgTransport, String> {
    let transport = postgres_transport(url)?;
    match transport {
        PgTransport::Unverified { ssl_mode } if !allow_insecure => Err(format!(
            "refusing to connect to PostgreSQL on a host that is not loopback with \
             sslmode={ssl_mode}, which does not verify the server's certificate: whoever can \
             intercept the connection could answer as the database. Add \
             sslmode=verify-full to the database URL (and sslrootcert=PATH for a private CA), \
             or accept the risk with {ALLOW_INSECURE_FLAG}"
        )),
        _ => Ok(transport),
    }
}

/// The pure rule, on what sqlx resolved: `host`, an explicit `socket`
/// directory, and `sslmode`.
pub fn classify(host: &str, socket: Option<&Path>, ssl_mode: PgSslMode) -> PgTransport {
    if socket.is_some() || is_loopback_host(host) {
        return PgTransport::Local;
    }
    match ssl_mode {
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => PgTransport::Verified,
        PgSslMode::Disable => PgTransport::Unverified {
            ssl_mode: "disable",
        },
        PgSslMode::Allow => PgTransport::Unverified { ssl_mode: "allow" },
        PgSslMode::Prefer => PgTransport::Unverified { ssl_mode: "prefer" },
        PgSslMode::Require => PgTransport::Unverified {
            ssl_mode: "require",
        },
    }
}

/// A Unix socket directory, `localhost`, 127.0.0.0/8 or `::1` (also as an
/// IPv4-mapped address). Other names are not resolved: they count as remote.
fn is_loopback_host(host: &str) -> bool {
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(url: &str) -> PgTransport {
        postgres_transport(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    const PREFER: PgTransport = PgTransport::Unverified { ssl_mode: "prefer" };

    #[test]
    fn loopback_and_sockets_are_local_whatever_the_sslmode() {
        for url in [
            "postgres://u:p@localhost/db",
            "postgres://u:p@LOCALHOST:5433/db?sslmode=disable",
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@127.10.20.30/db?sslmode=require",
            "postgres://u@[::1]:5432/db",
            "postgres://u@[::ffff:127.0.0.1]/db",
            "postgres://u@db.example.com/db?host=/var/run/postgresql",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
            "postgresql:///db?host=/tmp&sslmode=disable",
            // No host: sqlx picks a local socket directory or localhost.
            "postgres:///db",
            "postgres://u@db.example.com/db?hostaddr=127.0.0.1",
        ] {
            assert_eq!(of(url), PgTransport::Local, "{url}");
        }
    }

    #[test]
    fn other_hosts_are_remote_and_need_verification() {
        for (url, expected) in [
            ("postgres://u:p@db.example.com/db", PREFER),
            ("postgres://u@10.0.0.5:5432/db", PREFER),
            ("postgres://u@0.0.0.0/db", PREFER),
            ("postgres://u@[2001:db8::1]/db", PREFER),
            ("postgres://u@localhost.example.com/db", PREFER),
            ("postgres://u@127.0.0.1.nip.io/db", PREFER),
            ("postgres://u@localhost/db?host=db.example.com", PREFER),
            ("postgres://u@localhost/db?hostaddr=10.1.2.3", PREFER),
            (
                "postgres://u@db/x?sslmode=disable",
                PgTransport::Unverified {
                    ssl_mode: "disable",
                },
            ),
            (
                "postgres://u@db/x?sslmode=allow",
                PgTransport::Unverified { ssl_mode: "allow" },
            ),
            (
                "postgres://u@db/x?sslmode=require&sslrootcert=/ca.pem",
                PgTransport::Unverified {
                    ssl_mode: "require",
                },
            ),
            ("postgres://u@db/x?sslmode=verify-ca", PgTransport::Verified),
            (
                "postgres://u@db/x?sslmode=VERIFY-FULL&sslrootcert=/ca.pem",
                PgTransport::Verified,
            ),
            (
                "postgres://u@db/x?ssl-mode=verify-full",
                PgTransport::Verified,
            ),
        ] {
            assert_eq!(of(url), expected, "{url}");
        }
    }

    #[test]
    fn the_last_sslmode_wins_as_in_sqlx() {
        assert_eq!(
            of("postgres://u@db/x?sslmode=verify-full&sslmode=disable"),
            PgTransport::Unverified {
                ssl_mode: "disable"
            }
        );
    }

    #[test]
    fn refusal_names_sslmode_and_the_opt_out_never_the_password() {
        let url = "postgres://admin:hunter2@db.example.com:5432/tokend?sslmode=require";
        let err = check_postgres_transport(url, false).unwrap_err();
        assert!(err.contains("sslmode=require"), "{err}");
        assert!(err.contains("verify-full"), "{err}");
        assert!(err.contains("--database-allow-insecure-transport"), "{err}");
        assert!(
            err.contains("TOKEND_DATABASE_ALLOW_INSECURE_TRANSPORT"),
            "{err}"
        );
        assert!(!err.contains("hunter2") && !err.contains("admin"), "{err}");
        assert_eq!(
            check_postgres_transport(url, true),
            Ok(PgTransport::Unverified {
                ssl_mode: "require"
            })
        );
        assert_eq!(
            check_postgres_transport("postgres://u@db/x?sslmode=verify-full", false),
            Ok(PgTransport::Verified)
        );
    }

    #[test]
    fn unparsable_urls_are_refused_without_echoing_them() {
        for url in [
            "postgres://u:hunter2@db/x?sslmode=bogus",
            "postgres://u:hunter2@db:notaport/x",
            "postgres://u:hunter2@db/x?hostaddr=not-an-ip",
        ] {
            let err = check_postgres_transport(url, true).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
