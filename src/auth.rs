//! Credentials: HTTP Basic checks with constant-time comparison, and the 401 answer.

use base64::Engine;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use crate::server::{Body, error};

/// Compares two byte strings in time that depends only on their lengths, not on where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    // Keep the optimiser from turning the loop into an early exit.
    std::hint::black_box(diff) == 0
}

/// True when the request carries `Authorization: Basic` with these credentials.
pub fn basic_ok(headers: &HeaderMap, username: &str, password: &str) -> bool {
    let Some((user, pass)) = basic_credentials(headers) else {
        return false;
    };
    // Both comparisons always run, so timing does not tell which part was wrong.
    let user_ok = ct_eq(user.as_bytes(), username.as_bytes());
    let pass_ok = ct_eq(pass.as_bytes(), password.as_bytes());
    user_ok & pass_ok
}

/// The user name and password of a Basic `Authorization` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// False when a browser says the request comes from another site: `Sec-Fetch-Site` other than `same-origin` or
/// `none`, or an `Origin` whose host is not the `Host` asked for. Clients that send neither (curl, scripts) pass.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// 401 with `WWW-Authenticate: Basic`, except for our web app (`X-Requested-With: remote-agent`), so a browser
/// never pops its own password dialog over the app's login screen.
pub fn unauthorized(headers: &HeaderMap) -> Response<Body> {
    let mut resp = error(StatusCode::UNAUTHORIZED, "authentication required");
    let from_app = headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"remote-agent"));
    if !from_app {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"remote-agent\", charset=\"UTF-8\""),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn constant_time_compare_is_correct() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(!ct_eq(b"", b"x"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&h(&[])));
        assert!(same_origin(&h(&[
            ("host", "a.example"),
            ("origin", "https://a.example")
        ])));
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&h(&[
            ("host", "a.example"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&h(&[("origin", "null")])));
    }

    #[test]
    fn basic_header_is_checked() {
        // "me:p:w" — a password may hold colons.
        let ok = headers("Basic bWU6cDp3");
        assert!(basic_ok(&ok, "me", "p:w"));
        assert!(!basic_ok(&ok, "me", "p"));
        assert!(!basic_ok(&headers("Bearer bWU6cDp3"), "me", "p:w"));
        assert!(!basic_ok(&headers("Basic !!!"), "me", "p:w"));
        assert!(!basic_ok(&HeaderMap::new(), "me", "p:w"));
    }
}
