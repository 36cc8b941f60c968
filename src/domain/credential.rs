//! The credential in an `Authorization` header value: `Bearer <secret>`, or
//! `Api-Token <secret>` (Dynatrace's scheme). The scheme is matched without
//! regard to case (RFC 7235 §2.1). One parser for every transport: the gRPC
//! metadata, the REST sidecar's forwarded header, and Envoy ext_authz's
//! Check, which sees the HTTP request's header as text.

use super::secret::{TokenPrefix, TokenSecret};

/// The schemes a secret may be presented under.
pub const SCHEMES: [&str; 2] = ["Bearer", "Api-Token"];

/// The secret in one `Authorization` header value, parsed without I/O; or
/// why there is none (a fixed reason for metrics and the audit trail, never
/// for the client).
pub fn secret(value: &str, prefix: &TokenPrefix) -> Result<TokenSecret, &'static str> {
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or("malformed authorization header")?;
    if !SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Err("not a bearer credential");
    }
    TokenSecret::parse(prefix, rest.trim_start_matches(' ')).map_err(|_| "malformed secret")
}

#[cfg(test)]
mod tests {
    use super::super::ids::TokenId;
    use super::*;

    #[test]
    fn schemes_are_case_insensitive_and_nothing_else_passes() {
        let prefix = TokenPrefix::parse("tokend").unwrap();
        let text = TokenSecret::generate(TokenId::generate(1, [1; 10]))
            .unwrap()
            .reveal(&prefix)
            .into_exposed();
        for good in [
            format!("Bearer {text}"),
            format!("bearer {text}"),
            format!("BEARER  {text}"),
            format!("Api-Token {text}"),
            format!("api-token {text}"),
            format!("API-TOKEN {text}"),
            format!("aPi-ToKeN {text}"),
        ] {
            assert!(secret(&good, &prefix).is_ok(), "{good}");
        }
        for (bad, reason) in [
            (text.clone(), "malformed authorization header"),
            (format!("Basic {text}"), "not a bearer credential"),
            (format!("ApiToken {text}"), "not a bearer credential"),
            (format!("Api_Token {text}"), "not a bearer credential"),
            (format!("Token {text}"), "not a bearer credential"),
            (format!("Bearer{text}"), "malformed authorization header"),
            ("Bearer".to_owned(), "malformed authorization header"),
            ("Bearer ".to_owned(), "malformed secret"),
            ("Api-Token ".to_owned(), "malformed secret"),
            (format!("Bearer {text} extra"), "malformed secret"),
            (format!("Bearer {text},Bearer {text}"), "malformed secret"),
            (String::new(), "malformed authorization header"),
        ] {
            assert_eq!(secret(&bad, &prefix).err(), Some(reason), "{bad:?}");
        }
    }
}
