//! Credentials and the defences around them: HTTP Basic and argon2id passwords (with a short cache of verified
//! headers), browser sign-ins by cookie, one-time pairing tokens, the cross-site check, the Basic challenge, and
//! throttling (password checks bounded, lockouts, an overall slowdown, a request rate). It answers with values;
//! the server turns them into responses.
//!
//! This file holds the passwords and HTTP Basic; `tokens` the randomness, cookies and token hashing; `origin` the
//! cross-site checks; `throttle` the limits on password checks and requests; `memory` hands freed memory back
//! after a burst of logins. Everything is re-exported here, so callers name
//! `crate::auth::…` whatever file it lives in.

use base64::Engine;
use hyper::header::{self, HeaderMap, HeaderValue};

use crate::config::Secret;

mod memory;
mod origin;
mod throttle;
mod tokens;

pub use origin::{same_origin, same_origin_strict};
pub use throttle::{MAX_CHECKS, RATE_BURST, RATE_PER_SEC, Refused, Throttle, client_key};
pub use tokens::{
    COOKIE, PAIRING_TTL_SECS, SESSION_TTL_SECS, random_bytes, random_token, session_cookie,
    session_cookie_repeated, set_cookie, sha256_hex,
};

/// How long a verified Basic header is trusted without running argon2 again.
const BASIC_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
const BASIC_CACHE_MAX: usize = 256;

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
        Secret::Hash(h) => argon2_matches(given.as_bytes(), h).unwrap_or(false),
    }
}

/// Bytes of argon2 working memory asked of the allocator for one check, whatever the hash's own cost: more than
/// glibc's largest mmap threshold (32 MiB on 64-bit), so the block is always a mapping of its own and is unmapped
/// when the check ends. With the 19 MiB the default cost needs, glibc would raise its threshold past that size on
/// the first free, and serve every later check from the heap and per-thread arenas, which keep that memory after a
/// burst of logins. Only the pages the hash touches are ever resident.
const ARGON2_RESERVE: usize = 33 << 20;

/// Recomputes an argon2 PHC hash over `given` in memory of our own (see [`ARGON2_RESERVE`]) and compares in
/// constant time. `None` when the stored hash cannot be parsed.
fn argon2_matches(given: &[u8], phc: &str) -> Option<bool> {
    use argon2::password_hash::phc::PasswordHash;
    let parsed = PasswordHash::new(phc).ok()?;
    let algorithm = argon2::Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => argon2::Version::try_from(v).ok()?,
        None => argon2::Version::default(),
    };
    let params = argon2::Params::try_from(&parsed).ok()?;
    let (salt, expected) = (parsed.salt?, parsed.hash?);
    let blocks = params.block_count();
    let mut memory = Vec::with_capacity(blocks.max(ARGON2_RESERVE / argon2::Block::SIZE));
    memory.resize(blocks, argon2::Block::default());
    let mut out = vec![0u8; expected.as_bytes().len()];
    argon2::Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(given, salt.as_ref(), &mut out, &mut memory)
        .ok()?;
    Some(ct_eq(&out, expected.as_bytes()))
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

/// The `WWW-Authenticate` value a 401 carries, or None for our web app (`X-Requested-With: remote-agent`), so a
/// browser never pops its own password dialog over the app's login screen.
pub fn basic_challenge(headers: &HeaderMap) -> Option<HeaderValue> {
    let from_app = headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"remote-agent"));
    (!from_app).then(|| HeaderValue::from_static("Basic realm=\"remote-agent\", charset=\"UTF-8\""))
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
    fn argon2_hashes_are_checked_in_memory_of_our_own() {
        let h = hash_password("correct horse").unwrap();
        assert!(password_ok("correct horse", &Secret::Hash(h.clone())));
        assert!(!password_ok("correct horsf", &Secret::Hash(h.clone())));
        // Another cost and another algorithm, as a hash made elsewhere could have.
        let cheap = argon2::Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            argon2::Params::new(64, 2, 1, Some(16)).unwrap(),
        );
        use argon2::password_hash::PasswordHasher;
        let other = cheap.hash_password(b"pw-elsewhere").unwrap().to_string();
        assert!(password_ok("pw-elsewhere", &Secret::Hash(other.clone())));
        assert!(!password_ok("pw-elsewhere!", &Secret::Hash(other)));
        assert!(!password_ok("x", &Secret::Hash("$argon2id$garbage".into())));
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
