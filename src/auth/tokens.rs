//! Tokens and the sign-in cookie: the OS's randomness (the one source of every secret we make), SHA-256 for
//! storing tokens, and reading and setting the `ra_session` cookie.

use base64::Engine;
use hyper::header::{self, HeaderMap, HeaderValue};

/// The browser sign-in cookie.
pub const COOKIE: &str = "ra_session";
/// How long a browser sign-in lasts.
pub const SESSION_TTL_SECS: i64 = 30 * 24 * 3600;
/// How long a pairing link lasts.
pub const PAIRING_TTL_SECS: i64 = 600;

/// Bytes from the OS's random source: the one source of every secret we make (tokens, cookies, passwords).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
}

/// A random 256-bit token, base64url without padding (43 characters).
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// SHA-256 in hex: how tokens are stored (a stolen database gives no usable token).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether the request carries our sign-in cookie more than once (another site's page can plant a second
/// `ra_session` for a parent domain or a longer path, to sign the browser in as someone else): such a request
/// is refused rather than guessing which one is ours.
pub fn session_cookie_repeated(headers: &HeaderMap) -> bool {
    cookie_values(headers).nth(1).is_some()
}

fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// The value of the sign-in cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_values(headers).next().map(str::to_string)
}

/// `Set-Cookie` for a sign-in (or, with `None`, one that clears it). `Secure` whenever the browser is on HTTPS.
pub fn set_cookie(token: Option<&str>, secure: bool) -> HeaderValue {
    let (value, age) = match token {
        Some(t) => (t, SESSION_TTL_SECS),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}"
    ))
    .expect("a cookie of token characters")
}
