//! Reading a request's headers: cookies, bearer tokens, hosts, origins and
//! media types.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};

use crate::Auth;

pub(super) fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let text = value.to_str().map_err(|_| ());
    Some(text.and_then(|t| {
        let (scheme, rest) = t.split_once(' ').ok_or(())?;
        if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            Ok(rest.trim())
        } else {
            Err(())
        }
    }))
}

/// The host part of a `Host` value or an origin's authority, lowercased,
/// without the port (IPv6 without brackets).
fn host_of(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_owned();
    }
    a.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(a.clone(), |(h, _)| h.to_owned())
}

pub(super) fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

pub(super) fn host_allowed(auth: &Auth, authority: &str) -> bool {
    let host = host_of(authority);
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok()
        || auth
            .config
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host))
}

pub(super) fn origin_allowed(auth: &Auth, origin: &str, host: Option<&str>) -> bool {
    if auth
        .config
        .allowed_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    host.is_some_and(|h| {
        h.trim()
            .eq_ignore_ascii_case(authority.trim_end_matches('/'))
    })
}

/// The media type of a request's `Content-Type`, lowercased, without its
/// parameters (`application/json; charset=utf-8` is `application/json`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    use crate::http::SESSION_COOKIE;

    #[test]
    fn hosts_and_cookies() {
        assert_eq!(host_of("LOCALHOST:8080"), "localhost");
        assert_eq!(host_of("[::1]:8080"), "::1");
        assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_of("cc.example.uz:443"), "cc.example.uz");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; posbon_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eDp5"),
        );
        assert_eq!(bearer(&headers), Some(Err(())));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer psb_x"),
        );
        assert_eq!(bearer(&headers), Some(Ok("psb_x")));
    }
}
