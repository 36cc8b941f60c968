//! Check's answers in Envoy's terms: the OK response that sets the
//! identity headers on the upstream request, and the denied HTTP responses.

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::{CheckResponse, HeaderAppendAction, HttpStatusCode};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use tonic::Status;

use super::{ORGANIZATION_ID, ROLES, TOKEN_ID, TOKEN_TYPE};
use crate::domain::permission::binding_resource;
use crate::service::{Caller, Error};

/// The OK answer for `caller`: identity headers set (overwriting what the
/// client sent), other client `x-tokend-*` headers and (unless kept) the
/// credential removed, the identity also as dynamic metadata for the
/// access log. Never the secret.
pub(super) fn allowed(
    caller: &Caller,
    client_headers: &[String],
    keep_authorization: bool,
) -> CheckResponse {
    let org = &caller.principal.organization;
    let roles: Vec<String> = caller
        .principal
        .roles
        .iter()
        .map(|b| format!("{}:{}", b.role(), binding_resource(org, b)))
        .collect();
    // Each identity header with its key in the dynamic metadata.
    let identity = [
        (TOKEN_ID, "token_id", caller.token_id.as_str().to_owned()),
        (ORGANIZATION_ID, "organization_id", org.as_str().to_owned()),
        (
            TOKEN_TYPE,
            "token_type",
            caller.token_type.as_str().to_owned(),
        ),
    ];
    let mut ok = OkHttpResponseBuilder::new();
    let headers = identity
        .iter()
        .map(|(name, _, value)| (*name, value.clone()))
        .chain([(ROLES, roles.join(","))]);
    for (name, value) in headers {
        ok.add_header(
            name,
            value,
            Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
            true,
        );
    }
    for name in client_headers {
        let set = name == ROLES || identity.iter().any(|(set, _, _)| set == name);
        if !set {
            ok.remove_header(name.clone());
        }
    }
    if !keep_authorization {
        ok.remove_header("authorization");
    }
    let text = |s: String| Value {
        kind: Some(Kind::StringValue(s)),
    };
    let mut fields: HashMap<String, Value> = identity
        .into_iter()
        .map(|(_, key, value)| (key.to_owned(), text(value)))
        .collect();
    fields.insert(
        "roles".into(),
        Value {
            kind: Some(Kind::ListValue(ListValue {
                values: roles.into_iter().map(text).collect(),
            })),
        },
    );
    let mut response = CheckResponse::with_status(Status::ok(""));
    response
        .set_http_response(ok)
        .set_dynamic_metadata(Some(Struct { fields }));
    response
}

/// Why a request is denied, as the client is told: a class, never which
/// check of a secret failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denial {
    Unauthenticated,
    Forbidden,
    Misconfigured,
    Throttled { retry_after_seconds: u64 },
    Unavailable,
    Internal,
}

impl From<&Error> for Denial {
    fn from(err: &Error) -> Self {
        match err {
            Error::Unauthenticated => Self::Unauthenticated,
            Error::Throttled {
                retry_after_seconds,
            } => Self::Throttled {
                retry_after_seconds: *retry_after_seconds,
            },
            Error::PermissionDenied(_) | Error::NotFound(_) => Self::Forbidden,
            Error::Unavailable(_) => Self::Unavailable,
            Error::InvalidArgument(_) | Error::AlreadyExists(_) | Error::Internal(_) => {
                Self::Internal
            }
        }
    }
}

impl Denial {
    /// The HTTP status, the reason class in the body, and the gRPC status
    /// Envoy reads the verdict from.
    fn parts(self) -> (HttpStatusCode, &'static str, Status) {
        match self {
            Self::Unauthenticated => (
                HttpStatusCode::Unauthorized,
                "unauthenticated",
                Status::unauthenticated("missing or invalid API token"),
            ),
            Self::Forbidden => (
                HttpStatusCode::Forbidden,
                "forbidden",
                Status::permission_denied("the token does not meet the route's requirement"),
            ),
            Self::Misconfigured => (
                HttpStatusCode::Forbidden,
                "route_misconfigured",
                Status::permission_denied("the route's tokend requirement is misconfigured"),
            ),
            Self::Throttled { .. } => (
                HttpStatusCode::TooManyRequests,
                "throttled",
                Status::resource_exhausted("too many failed authentications from this address"),
            ),
            Self::Unavailable => (
                HttpStatusCode::ServiceUnavailable,
                "unavailable",
                Status::unavailable("database unavailable"),
            ),
            Self::Internal => (
                HttpStatusCode::InternalServerError,
                "internal",
                Status::internal("internal error"),
            ),
        }
    }
}

/// The denied answer: status, `{"error": "<class>"}`, and for 401 the
/// challenge, for 429 when to retry.
pub(super) fn denied(denial: Denial) -> CheckResponse {
    let (code, class, status) = denial.parts();
    let mut builder = DeniedHttpResponseBuilder::new();
    builder
        .set_http_status(code)
        .add_header(
            "content-type",
            "application/json",
            Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
            false,
        )
        .set_body(format!("{{\"error\":\"{class}\"}}"));
    match denial {
        Denial::Unauthenticated => {
            builder.add_header(
                "www-authenticate",
                "Bearer",
                Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                false,
            );
        }
        Denial::Throttled {
            retry_after_seconds,
        } => {
            builder.add_header(
                "retry-after",
                retry_after_seconds.to_string(),
                Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                false,
            );
        }
        _ => {}
    }
    let mut response = CheckResponse::with_status(status);
    response.set_http_response(builder);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::ext_authz::v3::pb::HttpResponse;

    fn denied_parts(denial: Denial) -> (i32, String, Vec<(String, String)>, i32) {
        let response = denied(denial);
        let Some(HttpResponse::DeniedResponse(d)) = response.http_response else {
            panic!("not denied");
        };
        let headers = d
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect();
        (
            d.status.map_or(0, |s| s.code),
            d.body,
            headers,
            response.status.map_or(0, |s| s.code),
        )
    }

    #[test]
    fn denials_name_a_class_and_nothing_more() {
        let (code, body, headers, grpc) = denied_parts(Denial::Unauthenticated);
        assert_eq!(
            (code, body.as_str(), grpc),
            (401, r#"{"error":"unauthenticated"}"#, 16)
        );
        assert!(headers.contains(&("www-authenticate".into(), "Bearer".into())));
        let (code, body, _, grpc) = denied_parts(Denial::Forbidden);
        assert_eq!(
            (code, body.as_str(), grpc),
            (403, r#"{"error":"forbidden"}"#, 7)
        );
        let (code, _, _, _) = denied_parts(Denial::Misconfigured);
        assert_eq!(code, 403);
        let (code, body, headers, _) = denied_parts(Denial::Throttled {
            retry_after_seconds: 60,
        });
        assert_eq!((code, body.as_str()), (429, r#"{"error":"throttled"}"#));
        assert!(headers.contains(&("retry-after".into(), "60".into())));
    }
}
