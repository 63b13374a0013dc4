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
