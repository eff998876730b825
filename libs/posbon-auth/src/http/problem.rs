//! Error answers: RFC 9457 problem documents ([`problem`]), and the
//! refusals of the guard.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::credentials::Refused;
use crate::identities::IdentityError;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer: [`problem`] without `Retry-After`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    problem(status, code, message, None)
}

/// The one error answer of every Posbon HTTP service, an RFC 9457 problem
/// document (`application/problem+json`):
///
/// ```json
/// {"type": "about:blank", "title": "Forbidden", "status": 403,
///  "detail": "escalation \"x\" is outside your scope", "code": "out_of_scope",
///  "error": "escalation \"x\" is outside your scope"}
/// ```
///
/// `detail` says what is wrong in words for people; `code` is the stable
/// machine-readable reason (`not_found`, `out_of_scope`, `invalid_query`,
/// `timeout`, ...); `error` repeats `detail` for clients written against the
/// earlier `{"error", "code"}` shape. With `retry_after_secs`, the answer
/// carries `Retry-After`.
pub fn problem(
    status: StatusCode,
    code: &str,
    detail: &str,
    retry_after_secs: Option<u64>,
) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
        "error": detail,
    });
    let mut response = (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body.to_string(),
    )
        .into_response();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

pub(super) fn unauthorized(message: &str, error_code: Option<&str>) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let challenge = match error_code {
        Some(code) => format!("Bearer realm=\"posbon\", error=\"{code}\""),
        None => "Bearer realm=\"posbon\"".to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// 403 for a caller whose scope does not include what they asked for.
pub fn out_of_scope(what: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        "out_of_scope",
        &format!("{what} is outside your scope"),
    )
}

/// The answer for a credential that gave no caller.
pub(super) fn refusal(refused: &Refused) -> Response {
    match refused {
        Refused::Invalid(_) | Refused::Expired => {
            unauthorized(&refused.to_string(), Some("invalid_token"))
        }
        Refused::Claims(m) => error(StatusCode::FORBIDDEN, "invalid_claims", m),
        Refused::Scope(_) => error(StatusCode::FORBIDDEN, "invalid_scope", &refused.to_string()),
        Refused::Throttled(_) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            &refused.to_string(),
        ),
        Refused::Unavailable(e) => unavailable(e),
    }
}

pub(super) fn unavailable(e: &IdentityError) -> Response {
    tracing::error!(error = %e, "identity store failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the identity store is not available; retry",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_are_problem_documents() {
        let response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_feeds",
            "32 feeds are open",
            Some(5),
        );
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({
                "type": "about:blank",
                "title": "Too Many Requests",
                "status": 429,
                "detail": "32 feeds are open",
                "code": "too_many_feeds",
                "error": "32 feeds are open",
            })
        );
    }
}
