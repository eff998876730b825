//! HTTP test support.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};

/// `router` with `Authorization: Bearer <token>` set on every request (for
/// tests whose subject is not authentication: the guard still checks the
/// token, its role and its scope).
pub fn as_bearer(router: Router, token: &str) -> Router {
    let value =
        HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is a header value");
    router.layer(axum::middleware::map_request(
        move |mut request: Request| {
            let value = value.clone();
            async move {
                request.headers_mut().insert(header::AUTHORIZATION, value);
                request
            }
        },
    ))
}
