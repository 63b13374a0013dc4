//! The throttle on password checks and API requests: lockouts after failed logins, clients grouped by /64, the
//! overall slowdown when failures pile up, the bound on checks in flight, and a request rate per client.

use crate::config::Secret;

use super::memory::give_back_free_memory;
use super::password_ok;

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
