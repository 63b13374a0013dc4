//! Credentials and the defences around them: HTTP Basic and argon2id passwords (with a short cache of verified
//! headers), browser sign-ins by cookie, one-time pairing tokens, the cross-site check, the 401 answer, and
//! throttling (lockouts, an overall slowdown, a request rate).

use base64::Engine;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use crate::config::Secret;
use crate::server::{Body, error};

/// The browser sign-in cookie.
pub const COOKIE: &str = "ra_session";
/// How long a browser sign-in lasts.
pub const SESSION_TTL_SECS: i64 = 30 * 24 * 3600;
/// How long a pairing link lasts.
pub const PAIRING_TTL_SECS: i64 = 600;
/// How long a verified Basic header is trusted without running argon2 again.
const BASIC_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const BASIC_CACHE_MAX: usize = 256;

/// A random 256-bit token, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 in hex: how tokens are stored (a stolen database gives no usable token).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An argon2id hash (PHC string) of a password, with a fresh salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Checks a password against the configured secret: constant-time for plaintext, argon2id for a hash.
pub fn password_ok(given: &str, secret: &Secret) -> bool {
    match secret {
        Secret::Plain(p) => ct_eq(given.as_bytes(), p.as_bytes()),
        Secret::Hash(h) => {
            use argon2::password_hash::PasswordVerifier;
            let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(h) else {
                return false;
            };
            argon2::Argon2::default()
                .verify_password(given.as_bytes(), &parsed)
                .is_ok()
        }
    }
}

/// Basic headers verified lately, by a hash of the header and of the secret they were checked against, so that
/// argon2 does not run on every API request (and cannot be used as a CPU drain by a signed-in client).
#[derive(Default)]
pub struct BasicCache(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl BasicCache {
    fn key(header: &str, secret: &Secret) -> String {
        sha256_hex(format!("{header}\n{}", secret.fingerprint()).as_bytes())
    }

    fn hit(&self, key: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).is_some_and(|t| t.elapsed() < BASIC_CACHE_TTL)
    }

    fn remember(&self, key: String) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= BASIC_CACHE_MAX {
            map.retain(|_, t| t.elapsed() < BASIC_CACHE_TTL);
            if map.len() >= BASIC_CACHE_MAX {
                map.clear();
            }
        }
        map.insert(key, std::time::Instant::now());
    }
}

/// Checks a request's Basic credentials against the settings; argon2 runs off the async threads, and a header
/// verified in the last minute is not verified again.
pub async fn basic_verified(
    headers: &HeaderMap,
    username: &str,
    secret: &Secret,
    cache: &BasicCache,
) -> bool {
    let Some(header) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let key = BasicCache::key(header, secret);
    if cache.hit(&key) {
        return true;
    }
    let Some((user, pass)) = basic_credentials(headers) else {
        return false;
    };
    let user_ok = ct_eq(user.as_bytes(), username.as_bytes());
    let pass_ok = match secret {
        Secret::Plain(_) => password_ok(&pass, secret),
        Secret::Hash(_) => {
            let secret = secret.clone();
            tokio::task::spawn_blocking(move || password_ok(&pass, &secret))
                .await
                .unwrap_or(false)
        }
    };
    let ok = user_ok & pass_ok;
    if ok {
        cache.remember(key);
    }
    ok
}

/// The value of the sign-in cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
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

/// For a request signed in by cookie that changes state: the browser must say it comes from our own page
/// (`Sec-Fetch-Site: same-origin`, or an `Origin` naming this host).
pub fn same_origin_strict(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let site_ok = text("sec-fetch-site").is_some_and(|s| s == "same-origin");
    let origin_ok = matches!((text("origin"), text("host")), (Some(origin), Some(host))
        if origin.split_once("://").is_some_and(|(_, a)| a.eq_ignore_ascii_case(host)));
    (site_ok || origin_ok) && same_origin(headers)
}

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

/// False when a browser says the request comes from another site. A browser that sends `Sec-Fetch-Site` (a header no
/// page can set) is believed: `same-origin` or `none` pass, anything else fails. Otherwise an `Origin` must name the
/// `Host` asked for. Clients that send neither (curl, scripts) pass.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        // Checked before Origin: under `Referrer-Policy: no-referrer` a same-origin form POST says `Origin: null`.
        return matches!(site, "same-origin" | "none");
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

/// How many failed logins a client may make within [`FAILURE_WINDOW`] before it is locked out.
const FAILURES_BEFORE_LOCKOUT: usize = 5;
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);
/// The first lockout; each further one doubles, up to [`MAX_LOCKOUT`].
const FIRST_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(30);
const MAX_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(3600);
/// Failures across all clients in the last minute past which every failed login is answered more slowly.
const GLOBAL_CALM: usize = 10;
/// API requests a client may make per second, sustained, and in a burst.
pub const RATE_PER_SEC: f64 = 20.0;
pub const RATE_BURST: f64 = 100.0;
/// Clients remembered at once; the ones idle longest are forgotten first.
const MAX_CLIENTS: usize = 10_000;

/// Throttling per client (the socket peer, or `CF-Connecting-IP` on the tunnel listener): growing lockouts after
/// failed logins, a slowdown of failed logins when failures pile up overall (never a global lockout, so an
/// attacker cannot lock the owner out), and a request rate on the API.
#[derive(Default)]
pub struct Throttle {
    state: std::sync::Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    clients: std::collections::HashMap<std::net::IpAddr, ClientState>,
    recent_failures: std::collections::VecDeque<std::time::Instant>,
}

struct ClientState {
    failures: std::collections::VecDeque<std::time::Instant>,
    locked_until: Option<std::time::Instant>,
    lockouts: u32,
    tokens: f64,
    refilled: std::time::Instant,
    seen: std::time::Instant,
}

impl ClientState {
    fn new(now: std::time::Instant) -> ClientState {
        ClientState {
            failures: Default::default(),
            locked_until: None,
            lockouts: 0,
            tokens: RATE_BURST,
            refilled: now,
            seen: now,
        }
    }
}

impl Throttle {
    fn with<T>(
        &self,
        ip: std::net::IpAddr,
        f: impl FnOnce(&mut ClientState, &mut ThrottleState) -> T,
    ) -> T {
        let now = std::time::Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.clients.len() >= MAX_CLIENTS && !state.clients.contains_key(&ip) {
            // Forget the client idle longest (a linear scan, only when the table is full).
            if let Some(oldest) = state
                .clients
                .iter()
                .min_by_key(|(_, c)| c.seen)
                .map(|(ip, _)| *ip)
            {
                state.clients.remove(&oldest);
            }
        }
        let mut client = state
            .clients
            .remove(&ip)
            .unwrap_or_else(|| ClientState::new(now));
        client.seen = now;
        let out = f(&mut client, &mut state);
        state.clients.insert(ip, client);
        out
    }

    /// How long the client must wait before it may try a password again, if it is locked out.
    pub fn locked(&self, ip: std::net::IpAddr) -> Option<std::time::Duration> {
        let now = std::time::Instant::now();
        self.with(ip, |c, _| {
            c.locked_until.filter(|t| *t > now).map(|t| t - now)
        })
    }

    /// Records a failed login; returns how long to hold the answer back (the overall slowdown).
    pub fn failed(&self, ip: std::net::IpAddr) -> std::time::Duration {
        let now = std::time::Instant::now();
        self.with(ip, |c, all| {
            c.failures.push_back(now);
            while c.failures.front().is_some_and(|t| now - *t > FAILURE_WINDOW) {
                c.failures.pop_front();
            }
            if c.failures.len() >= FAILURES_BEFORE_LOCKOUT {
                let lockout = FIRST_LOCKOUT
                    .saturating_mul(1 << c.lockouts.min(16))
                    .min(MAX_LOCKOUT);
                c.locked_until = Some(now + lockout);
                c.lockouts += 1;
                c.failures.clear();
                tracing::warn!(client = %ip, "locked out for {} s after repeated failed logins", lockout.as_secs());
            }
            all.recent_failures.push_back(now);
            while all
                .recent_failures
                .front()
                .is_some_and(|t| now - *t > std::time::Duration::from_secs(60))
            {
                all.recent_failures.pop_front();
            }
            let excess = all.recent_failures.len().saturating_sub(GLOBAL_CALM) as u32;
            std::time::Duration::from_millis(100)
                .saturating_mul(excess)
                .min(std::time::Duration::from_secs(2))
        })
    }

    /// Forgets a client's failures after it logged in.
    pub fn succeeded(&self, ip: std::net::IpAddr) {
        self.with(ip, |c, _| {
            c.failures.clear();
            c.lockouts = 0;
            c.locked_until = None;
        })
    }

    /// Takes one request from the client's API budget; how long to wait when it is spent.
    pub fn request(&self, ip: std::net::IpAddr) -> Result<(), std::time::Duration> {
        let now = std::time::Instant::now();
        self.with(ip, |c, _| {
            let earned = now.duration_since(c.refilled).as_secs_f64() * RATE_PER_SEC;
            c.tokens = (c.tokens + earned).min(RATE_BURST);
            c.refilled = now;
            if c.tokens >= 1.0 {
                c.tokens -= 1.0;
                Ok(())
            } else {
                Err(std::time::Duration::from_secs_f64(
                    (1.0 - c.tokens) / RATE_PER_SEC,
                ))
            }
        })
    }
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
        // A same-origin form POST from a page with `Referrer-Policy: no-referrer` (Chromium).
        assert!(same_origin(&h(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&h(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-site")
        ])));
    }

    #[test]
    fn basic_header_is_parsed() {
        // "me:p:w" — a password may hold colons.
        let creds = basic_credentials(&headers("Basic bWU6cDp3"));
        assert_eq!(creds, Some(("me".into(), "p:w".into())));
        assert_eq!(basic_credentials(&headers("basic bWU6cDp3")), creds);
        assert_eq!(basic_credentials(&headers("Bearer bWU6cDp3")), None);
        assert_eq!(basic_credentials(&headers("Basic !!!")), None);
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn basic_credentials_are_verified_against_plain_and_hashed_secrets() {
        let ok = headers("Basic bWU6cDp3");
        let plain = Secret::Plain("p:w".into());
        let hashed = Secret::Hash(hash_password("p:w").unwrap());
        let cache = BasicCache::default();
        for secret in [&plain, &hashed] {
            assert!(basic_verified(&ok, "me", secret, &cache).await);
            assert!(!basic_verified(&ok, "you", secret, &BasicCache::default()).await);
            assert!(!basic_verified(&headers("Basic bWU6cA=="), "me", secret, &cache).await);
        }
        // A changed secret does not hit the cache of the old one.
        assert!(!basic_verified(&ok, "me", &Secret::Plain("new".into()), &cache).await);
        assert!(password_ok("p:w", &hashed) && !password_ok("p:W", &hashed));
    }
}
