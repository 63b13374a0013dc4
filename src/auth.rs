//! Credentials and the defences around them: HTTP Basic and argon2id passwords (with a short cache of verified
//! headers), browser sign-ins by cookie, one-time pairing tokens, the cross-site check, the Basic challenge, and
//! throttling (password checks bounded, lockouts, an overall slowdown, a request rate). It answers with values;
//! the server turns them into responses.

use base64::Engine;
use hyper::header::{self, HeaderMap, HeaderValue};

use crate::config::Secret;

/// The browser sign-in cookie.
pub const COOKIE: &str = "ra_session";
/// How long a browser sign-in lasts.
pub const SESSION_TTL_SECS: i64 = 30 * 24 * 3600;
/// How long a pairing link lasts.
pub const PAIRING_TTL_SECS: i64 = 600;
/// How long a verified Basic header is trusted without running argon2 again.
const BASIC_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const BASIC_CACHE_MAX: usize = 256;

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

/// An argon2id hash (PHC string) of a password, with a fresh salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// The fewest characters a password may have (`passwd` asks for them; `serve` refuses a shorter plaintext one).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Refuses a plaintext password (from `AUTH_PASSWORD`, `.env` or `[auth] password`) shorter than
/// [`MIN_PASSWORD_CHARS`]; a hash was made by `passwd`, which checked it.
pub fn check_password_length(secret: &Secret) -> anyhow::Result<()> {
    match secret {
        Secret::Plain(p) if p.chars().count() < MIN_PASSWORD_CHARS => anyhow::bail!(
            "the password (AUTH_PASSWORD, or [auth] password in the config file) has fewer than \
             {MIN_PASSWORD_CHARS} characters: set a longer one, or run `remote-agent passwd`"
        ),
        _ => Ok(()),
    }
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

/// Makes every large allocation a mapping of its own, unmapped when freed. An argon2id check allocates 19 MiB;
/// glibc raises its mmap threshold past the size of the first such block freed, so later ones come from the heap
/// and per-thread arenas, which keep that memory after a burst of logins (a fixed threshold turns that off).
#[allow(unsafe_code)]
pub fn keep_large_allocations_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator, which it may do at any time.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Hands the free pages of the allocator's arenas back to the system. After a burst of logins, the hundreds of
/// connections' buffers are freed into the arenas of the threads that served them, and glibc keeps them there.
#[allow(unsafe_code)]
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages that no allocation uses.
    unsafe {
        nix::libc::malloc_trim(0);
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

/// Checks a request's Basic credentials against the settings, through the throttle (see [`Throttle::verify`]); a
/// header verified in the last minute is not verified again (and passes without waiting its turn).
pub async fn basic_verified(
    headers: &HeaderMap,
    username: &str,
    secret: &Secret,
    cache: &BasicCache,
    throttle: &Throttle,
    client: std::net::IpAddr,
) -> Result<bool, Refused> {
    let Some(header) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(false);
    };
    let key = BasicCache::key(header, secret);
    if cache.hit(&key) {
        return Ok(true);
    }
    // A header that does not parse is a failed attempt like any other, checked the same way.
    let (user, pass) = basic_credentials(headers).unwrap_or_default();
    let user_ok = !user.is_empty() && ct_eq(user.as_bytes(), username.as_bytes());
    let ok = throttle.verify(client, user_ok, pass, secret).await?;
    if ok {
        cache.remember(key);
    }
    Ok(ok)
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

/// For a request signed in by cookie that changes state: the browser must say it comes from our own page
/// (`Sec-Fetch-Site: same-origin`, or an `Origin` naming this host). `secure`: the browser is on HTTPS.
pub fn same_origin_strict(headers: &HeaderMap, secure: bool) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let site_ok = text("sec-fetch-site").is_some_and(|s| s == "same-origin");
    let origin_ok = matches!((text("origin"), text("host")), (Some(origin), Some(host))
        if origin_is_ours(origin, host, secure));
    (site_ok || origin_ok) && same_origin(headers, secure)
}

/// An `Origin` names this server when both its host and its scheme match: `http://` and `https://` on one host
/// are different sites to a browser (a page on plain HTTP, which anyone on the path can write, must not act for
/// the HTTPS one).
fn origin_is_ours(origin: &str, host: &str, secure: bool) -> bool {
    let scheme = if secure { "https" } else { "http" };
    origin.split_once("://").is_some_and(|(s, authority)| {
        s.eq_ignore_ascii_case(scheme) && authority.eq_ignore_ascii_case(host)
    })
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
/// `Host` asked for, with the scheme the browser is on (`secure`: HTTPS). Clients that send neither (curl,
/// scripts) pass.
pub fn same_origin(headers: &HeaderMap, secure: bool) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        // Checked before Origin: under `Referrer-Policy: no-referrer` a same-origin form POST says `Origin: null`.
        return matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin_is_ours(origin, host, secure),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The `WWW-Authenticate` value a 401 carries, or None for our web app (`X-Requested-With: remote-agent`), so a
/// browser never pops its own password dialog over the app's login screen.
pub fn basic_challenge(headers: &HeaderMap) -> Option<HeaderValue> {
    let from_app = headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"remote-agent"));
    (!from_app).then(|| HeaderValue::from_static("Basic realm=\"remote-agent\", charset=\"UTF-8\""))
}

/// How many failed logins a client may make within [`FAILURE_WINDOW`] before it is locked out.
const FAILURES_BEFORE_LOCKOUT: usize = 5;
const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);
/// The first lockout; each further one doubles, up to [`MAX_LOCKOUT`].
const FIRST_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(30);
const MAX_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(3600);
/// Failed logins across all clients in the last minute past which every password check waits before it runs.
const GLOBAL_BUDGET: usize = 10;
/// Password checks running at once, server-wide. An argon2id check holds 19 MiB while it runs, so this bounds
/// what a flood of logins can take; the checks past it are refused at once rather than queued.
pub const MAX_CHECKS: usize = 2;
/// How long a request waits for its client's check in flight before it is refused.
const CLIENT_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// API requests a client may make per second, sustained, and in a burst.
pub const RATE_PER_SEC: f64 = 20.0;
/// API requests a client may make at once after a quiet spell (see [`RATE_PER_SEC`]).
pub const RATE_BURST: f64 = 100.0;
/// Clients remembered at once; the ones idle longest are forgotten first.
const MAX_CLIENTS: usize = 10_000;

/// Why a password was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client is locked out for this long after failed logins.
    Locked(std::time::Duration),
    /// [`MAX_CHECKS`] checks are running already (or this client's own check took too long to finish).
    Busy,
}

impl Refused {
    /// What to tell the client, and how long it should wait.
    pub fn message(self) -> (String, std::time::Duration) {
        match self {
            Refused::Locked(wait) => (
                format!("too many failed logins; try again in {}", human_wait(wait)),
                wait,
            ),
            Refused::Busy => (
                "too many sign-in attempts at once; try again in a moment".into(),
                std::time::Duration::from_secs(1),
            ),
        }
    }
}

/// A wait in whole seconds (rounded up), or minutes past two of them.
fn human_wait(wait: std::time::Duration) -> String {
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    if secs < 120 {
        format!("{secs} s")
    } else {
        format!("{} min", secs.div_ceil(60))
    }
}

/// Who a client is for throttling: its address, except that an IPv6 client is its /64 (anyone with one has
/// 2^64 addresses to rotate through) and an IPv4-mapped IPv6 address is the IPv4 one.
pub fn client_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// Throttling per client (see [`client_key`]; the socket peer, or `CF-Connecting-IP` on the tunnel listener):
/// a bounded number of password checks at once, one per client, each attempt counted before it is checked;
/// growing lockouts after failed logins; a slowdown of every password check when failures pile up overall
/// (never a global lockout, so an attacker cannot lock the owner out, and cookies and pairing links are not
/// checked here at all); and a request rate on the API.
#[derive(Default)]
pub struct Throttle {
    shared: std::sync::Arc<ThrottleShared>,
}

#[derive(Default)]
struct ThrottleShared {
    state: std::sync::Mutex<ThrottleState>,
    /// Woken whenever a password check ends, for the requests waiting on their client's check.
    check_ended: tokio::sync::Notify,
    /// A hand-back of free memory is due (see [`ThrottleShared::trim_later`]), after the last login was answered.
    trim_due: std::sync::atomic::AtomicBool,
    last_login: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long logins must have been quiet before the memory they freed is handed back: by then a burst's
/// connections have had their answers and closed.
const TRIM_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
struct ThrottleState {
    clients: std::collections::HashMap<std::net::IpAddr, ClientState>,
    recent_failures: std::collections::VecDeque<std::time::Instant>,
    checks: usize,
}

struct ClientState {
    failures: std::collections::VecDeque<std::time::Instant>,
    locked_until: Option<std::time::Instant>,
    lockouts: u32,
    checking: bool,
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
            checking: false,
            tokens: RATE_BURST,
            refilled: now,
            seen: now,
        }
    }
}

/// A password check's place among the [`MAX_CHECKS`]; given back on drop, wherever that happens (on a blocking
/// thread when argon2 runs there, so a client that hangs up does not free the place while argon2 still runs).
struct CheckSlot {
    shared: std::sync::Arc<ThrottleShared>,
    key: std::net::IpAddr,
}

impl Drop for CheckSlot {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            state.checks = state.checks.saturating_sub(1);
            if let Some(c) = state.clients.get_mut(&self.key) {
                c.checking = false;
            }
        }
        self.shared.check_ended.notify_waiters();
        ThrottleShared::trim_later(&self.shared);
    }
}

impl ThrottleShared {
    /// Hands free memory back once logins have been quiet for [`TRIM_AFTER`] (each call pushes that back), so
    /// that the buffers of a burst's connections, answered and closed by then, do not stay with the allocator.
    fn trim_later(shared: &std::sync::Arc<ThrottleShared>) {
        use std::sync::atomic::Ordering::Relaxed;
        *shared.last_login.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::time::Instant::now());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if shared.trim_due.swap(true, Relaxed) {
            return;
        }
        let shared = shared.clone();
        runtime.spawn(async move {
            loop {
                let last = *shared.last_login.lock().unwrap_or_else(|e| e.into_inner());
                let due = last.unwrap_or_else(std::time::Instant::now) + TRIM_AFTER;
                if std::time::Instant::now() >= due {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
            }
            shared.trim_due.store(false, Relaxed);
            let _ = tokio::task::spawn_blocking(give_back_free_memory).await;
        });
    }
}

/// What [`Throttle::begin`] decided.
enum Begin {
    Go {
        slot: CheckSlot,
        /// How long to hold the check back (the overall slowdown).
        slow: std::time::Duration,
        /// The lockout this attempt starts if it fails.
        locks: Option<std::time::Duration>,
    },
    /// This client's previous check is still running.
    Wait,
    Refused(Refused),
}

impl Throttle {
    fn with<T>(
        &self,
        ip: std::net::IpAddr,
        f: impl FnOnce(&mut ClientState, &mut ThrottleState) -> T,
    ) -> T {
        let key = client_key(ip);
        let now = std::time::Instant::now();
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.clients.len() >= MAX_CLIENTS && !state.clients.contains_key(&key) {
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
            .remove(&key)
            .unwrap_or_else(|| ClientState::new(now));
        client.seen = now;
        let out = f(&mut client, &mut state);
        state.clients.insert(key, client);
        out
    }

    /// How long the client must wait before it may try a password again, if it is locked out.
    pub fn locked(&self, ip: std::net::IpAddr) -> Option<std::time::Duration> {
        let now = std::time::Instant::now();
        let wait = self.with(ip, |c, _| {
            c.locked_until.filter(|t| *t > now).map(|t| t - now)
        });
        if wait.is_some() {
            ThrottleShared::trim_later(&self.shared);
        }
        wait
    }

    /// Checks a password (`user_ok`: the user name matched) under the defences: a locked-out client is refused;
    /// a client whose previous check still runs waits for it; past [`MAX_CHECKS`] checks at once the attempt is
    /// refused; the attempt counts as a failure before the check runs (so concurrent guesses cannot all be
    /// checked before the first failure is recorded) and is forgiven if it succeeds; and while failures pile up
    /// overall, the check waits before it runs. Argon2 runs on a blocking thread.
    pub async fn verify(
        &self,
        ip: std::net::IpAddr,
        user_ok: bool,
        password: String,
        secret: &Secret,
    ) -> Result<bool, Refused> {
        let deadline = tokio::time::Instant::now() + CLIENT_QUEUE_WAIT;
        let (slot, slow, locks) = loop {
            // Registered before looking, so that a check ending in between is not missed.
            let ended = self.shared.check_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            match self.begin(ip) {
                Begin::Go { slot, slow, locks } => break (slot, slow, locks),
                Begin::Refused(r) => {
                    ThrottleShared::trim_later(&self.shared);
                    return Err(r);
                }
                Begin::Wait => {
                    if tokio::time::timeout_at(deadline, ended).await.is_err() {
                        return Err(Refused::Busy);
                    }
                }
            }
        };
        if !slow.is_zero() {
            tokio::time::sleep(slow).await;
        }
        let pass_ok = match secret {
            Secret::Plain(_) => password_ok(&password, secret),
            Secret::Hash(_) => {
                let secret = secret.clone();
                tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    password_ok(&password, &secret)
                })
                .await
                .unwrap_or(false)
            }
        };
        let ok = user_ok & pass_ok;
        self.ended(ip, ok, locks);
        Ok(ok)
    }

    fn begin(&self, ip: std::net::IpAddr) -> Begin {
        let now = std::time::Instant::now();
        self.with(ip, |c, all| {
            if let Some(until) = c.locked_until.filter(|t| *t > now) {
                return Begin::Refused(Refused::Locked(until - now));
            }
            if c.checking {
                return Begin::Wait;
            }
            if all.checks >= MAX_CHECKS {
                return Begin::Refused(Refused::Busy);
            }
            all.checks += 1;
            c.checking = true;
            c.failures.push_back(now);
            while c
                .failures
                .front()
                .is_some_and(|t| now - *t > FAILURE_WINDOW)
            {
                c.failures.pop_front();
            }
            let mut locks = None;
            if c.failures.len() >= FAILURES_BEFORE_LOCKOUT {
                let lockout = FIRST_LOCKOUT
                    .saturating_mul(1 << c.lockouts.min(16))
                    .min(MAX_LOCKOUT);
                c.locked_until = Some(now + lockout);
                c.lockouts += 1;
                c.failures.clear();
                locks = Some(lockout);
            }
            while all
                .recent_failures
                .front()
                .is_some_and(|t| now - *t > std::time::Duration::from_secs(60))
            {
                all.recent_failures.pop_front();
            }
            let excess = all.recent_failures.len().saturating_sub(GLOBAL_BUDGET) as u32;
            let slow = std::time::Duration::from_millis(100)
                .saturating_mul(excess)
                .min(std::time::Duration::from_secs(2));
            Begin::Go {
                slot: CheckSlot {
                    shared: self.shared.clone(),
                    key: client_key(ip),
                },
                slow,
                locks,
            }
        })
    }

    /// Settles a checked attempt: a success forgets the client's failures (and a lockout its attempt started);
    /// a failure counts toward the overall slowdown and is logged (never the password).
    fn ended(&self, ip: std::net::IpAddr, ok: bool, locks: Option<std::time::Duration>) {
        let now = std::time::Instant::now();
        self.with(ip, |c, all| {
            if ok {
                c.failures.clear();
                c.lockouts = 0;
                c.locked_until = None;
            } else {
                all.recent_failures.push_back(now);
            }
        });
        if !ok {
            tracing::warn!(client = %ip, "failed login");
            if let Some(lockout) = locks {
                tracing::warn!(client = %ip, "locked out for {} s after repeated failed logins", lockout.as_secs());
            }
        }
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
        assert!(same_origin(&h(&[]), true));
        assert!(same_origin(
            &h(&[("host", "a.example"), ("origin", "https://a.example")]),
            true
        ));
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")]), true));
        assert!(!same_origin(
            &h(&[("host", "a.example"), ("origin", "https://evil.example")]),
            true
        ));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")]), true));
        assert!(!same_origin(&h(&[("origin", "null")]), true));
        // A same-origin form POST from a page with `Referrer-Policy: no-referrer` (Chromium).
        assert!(same_origin(
            &h(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            true
        ));
        assert!(!same_origin(
            &h(&[("origin", "null"), ("sec-fetch-site", "same-site")]),
            true
        ));
        // The scheme counts: a plain-HTTP page of the same host is another site to an HTTPS one, and back.
        let ours = h(&[("host", "a.example"), ("origin", "https://a.example")]);
        assert!(!same_origin(&ours, false) && !same_origin_strict(&ours, false));
        assert!(same_origin_strict(&ours, true));
        let plain = h(&[("host", "a.example"), ("origin", "http://a.example")]);
        assert!(!same_origin(&plain, true) && same_origin(&plain, false));
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
        // A client of its own for each check: this is about the answer, not the lockout.
        let mut n = 0u8;
        let mut verified =
            async |h: &HeaderMap, user: &str, secret: &Secret, cache: &BasicCache| {
                n += 1;
                let client = std::net::IpAddr::from([192, 0, 2, n]);
                basic_verified(h, user, secret, cache, &Throttle::default(), client)
                    .await
                    .unwrap()
            };
        for secret in [&plain, &hashed] {
            assert!(verified(&ok, "me", secret, &cache).await);
            assert!(!verified(&ok, "you", secret, &BasicCache::default()).await);
            assert!(!verified(&headers("Basic bWU6cA=="), "me", secret, &cache).await);
        }
        // A changed secret does not hit the cache of the old one.
        assert!(!verified(&ok, "me", &Secret::Plain("new".into()), &cache).await);
        assert!(password_ok("p:w", &hashed) && !password_ok("p:W", &hashed));
    }
}
