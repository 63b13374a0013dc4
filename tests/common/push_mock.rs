//! A mock Web Push service for integration tests: it plays the browser vendor's push server.
//!
//! It speaks just enough HTTP/1.1 (std::net, one thread per connection, no async runtime; each response closes
//! the connection) on `127.0.0.1:0`, so the daemon must run with `REMOTE_AGENT_PUSH_ALLOW_LOOPBACK=1` to accept
//! its `http://` endpoints.
//!
//! # API
//! - [`PushMock::start`] binds and serves until the value is dropped.
//! - [`PushMock::origin`] → `http://127.0.0.1:PORT` (the `aud` the VAPID JWT must name).
//! - [`PushMock::subscription`] → a new subscription, as the JSON a browser's `PushSubscription.toJSON()` gives:
//!   `{"endpoint":"http://127.0.0.1:PORT/push/<id>","keys":{"p256dh":"<b64url 65 bytes>","auth":"<b64url 16>"}}`.
//!   The mock keeps its private key and auth secret to decrypt what is sent to it.
//! - [`PushMock::messages`] → every message accepted so far (answered 201), in arrival order, as [`Message`]
//!   (the subscription id, headers, the JWT's claims, the VAPID key `k`, the decrypted payload as JSON).
//! - [`PushMock::attempts`] → every `POST` received (accepted or not), as [`Attempt`] (path, status answered,
//!   the reason of a refusal).
//! - [`PushMock::answer_gone`] → from now on every `POST` is answered `410 Gone` (after the checks below).
//! - [`PushMock::fail_next`] `(status, retry_after, n)` → the next `n` valid `POST`s are answered `status`
//!   (e.g. 503 or 429) with `Retry-After: <retry_after>` when given, then back to 201.
//!
//! # What a `POST /<anything>` must carry (else 400/401/403 with the reason, recorded in the attempt)
//! - `Authorization: vapid t=<JWT>, k=<key>`: `k` a base64url uncompressed P-256 point; the JWT's header
//!   `{"typ":"JWT","alg":"ES256"}`, its ES256 signature valid for `k`, claims `aud` = [`PushMock::origin`],
//!   `exp` in the future and at most 24 h away, `sub` present (`mailto:` or `https:`) → else 401;
//! - `Content-Encoding: aes128gcm`, `TTL: <seconds>` (an integer), `Urgency` one of very-low/low/normal/high
//!   → else 400;
//! - a body that decrypts (RFC 8291 with RFC 8188 `aes128gcm`, one record, with the path's subscription keys)
//!   to JSON, at most 4096 bytes → else 400; a path not of a subscription it made → 404.
//!
//! Accepted: `201 Created` with a `Location` header.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier;
use serde_json::Value;
use sha2::Sha256;

/// One message the mock accepted.
#[derive(Debug, Clone)]
pub struct Message {
    /// The subscription id (the last path segment).
    pub subscription: String,
    /// The request's headers, names lower-cased.
    pub headers: HashMap<String, String>,
    /// The VAPID JWT's claims.
    pub claims: Value,
    /// The `k` of the Authorization header (base64url).
    pub vapid_key: String,
    /// The decrypted payload.
    pub payload: Value,
    /// The encrypted body's length.
    pub body_len: usize,
}

impl Message {
    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// One POST received.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub path: String,
    pub status: u16,
    /// Why it was refused ("" when not refused by the checks).
    pub reason: String,
}

struct Sub {
    secret: p256::SecretKey,
    public: Vec<u8>,
    auth: [u8; 16],
}

#[derive(Default)]
struct State {
    subs: HashMap<String, Sub>,
    messages: Vec<Message>,
    attempts: Vec<Attempt>,
    gone: bool,
    fail: Option<(u16, Option<u32>, usize)>,
}

/// The mock push service (see the module doc).
pub struct PushMock {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl PushMock {
    /// Binds 127.0.0.1:0 and serves on background threads until dropped.
    pub fn start() -> PushMock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || {
                            let _ = serve(conn, addr, &st);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        PushMock { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new subscription's JSON, as a browser gives it.
    pub fn subscription(&self) -> Value {
        let secret = loop {
            let mut b = [0u8; 32];
            getrandom::fill(&mut b).unwrap();
            if let Ok(k) = p256::SecretKey::from_slice(&b) {
                break k;
            }
        };
        let public = secret.public_key().to_sec1_bytes().to_vec();
        assert_eq!(public.len(), 65);
        let mut auth = [0u8; 16];
        getrandom::fill(&mut auth).unwrap();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let json = serde_json::json!({
            "endpoint": format!("{}/push/{id}", self.origin()),
            "expirationTime": null,
            "keys": {"p256dh": B64.encode(&public), "auth": B64.encode(auth)},
        });
        self.state.lock().unwrap().subs.insert(
            id,
            Sub {
                secret,
                public,
                auth,
            },
        );
        json
    }

    /// The messages accepted so far.
    pub fn messages(&self) -> Vec<Message> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Every POST received so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.lock().unwrap().attempts.clone()
    }

    /// From now on, answer 410 Gone.
    pub fn answer_gone(&self) {
        self.state.lock().unwrap().gone = true;
    }

    /// Answer the next `n` valid POSTs with `status` (and `Retry-After` when given), then 201 again.
    pub fn fail_next(&self, status: u16, retry_after: Option<u32>, n: usize) {
        self.state.lock().unwrap().fail = Some((status, retry_after, n));
    }
}

impl Drop for PushMock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(conn: TcpStream, addr: SocketAddr, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let (status, reason, extra) = if method != "POST" {
        (405, "not a POST".to_string(), String::new())
    } else {
        let mut st = state.lock().unwrap();
        match check(&path, &headers, &body, addr, &st) {
            Err((status, reason)) => (status, reason, String::new()),
            Ok(msg) => {
                if st.gone {
                    (410, String::new(), String::new())
                } else if let Some((status, retry, n)) = st.fail.take() {
                    if n > 1 {
                        st.fail = Some((status, retry, n - 1));
                    }
                    let extra = retry
                        .map(|r| format!("Retry-After: {r}\r\n"))
                        .unwrap_or_default();
                    (status, String::new(), extra)
                } else {
                    st.messages.push(msg);
                    (201, String::new(), format!("Location: {path}/msg\r\n"))
                }
            }
        }
    };
    state.lock().unwrap().attempts.push(Attempt {
        path,
        status,
        reason: reason.clone(),
    });
    let mut w = conn;
    let resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{reason}",
        reason.len()
    );
    w.write_all(resp.as_bytes())?;
    w.flush()?;
    let _ = w.shutdown(Shutdown::Write);
    Ok(())
}

fn check(
    path: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
    addr: SocketAddr,
    st: &State,
) -> Result<Message, (u16, String)> {
    let id = path.rsplit('/').next().unwrap_or("");
    let sub = st
        .subs
        .get(id)
        .ok_or((404, "no such subscription".to_string()))?;
    let (claims, k) = check_vapid(
        headers
            .get("authorization")
            .map(String::as_str)
            .unwrap_or(""),
        &format!("http://{addr}"),
    )
    .map_err(|e| (401, e))?;
    let bad = |s: &str| (400, s.to_string());
    if headers.get("content-encoding").map(String::as_str) != Some("aes128gcm") {
        return Err(bad("Content-Encoding is not aes128gcm"));
    }
    if headers
        .get("ttl")
        .and_then(|t| t.parse::<u64>().ok())
        .is_none()
    {
        return Err(bad("TTL missing or not an integer"));
    }
    if !matches!(
        headers.get("urgency").map(String::as_str),
        Some("very-low" | "low" | "normal" | "high")
    ) {
        return Err(bad("Urgency missing or unknown"));
    }
    if body.len() > 4096 {
        return Err(bad("body over 4096 bytes"));
    }
    let plain = decrypt(sub, body).map_err(|e| (400, e))?;
    let payload: Value = serde_json::from_slice(&plain).map_err(|_| bad("payload is not JSON"))?;
    Ok(Message {
        subscription: id.to_string(),
        headers: headers.clone(),
        claims,
        vapid_key: k,
        payload,
        body_len: body.len(),
    })
}

fn check_vapid(auth: &str, origin: &str) -> Result<(Value, String), String> {
    let rest = auth
        .strip_prefix("vapid ")
        .ok_or("Authorization is not `vapid t=…, k=…`")?;
    let (mut t, mut k) = (None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("t=") {
            t = Some(v);
        } else if let Some(v) = part.strip_prefix("k=") {
            k = Some(v);
        }
    }
    let (t, k) = (t.ok_or("no t=")?, k.ok_or("no k=")?);
    let key_bytes = B64.decode(k).map_err(|_| "k is not base64url")?;
    if key_bytes.len() != 65 || key_bytes[0] != 4 {
        return Err("k is not an uncompressed P-256 point".into());
    }
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key_bytes)
        .map_err(|_| "k is not a P-256 point")?;
    let segs: Vec<&str> = t.split('.').collect();
    if segs.len() != 3 {
        return Err("JWT is not three segments".into());
    }
    let header: Value = B64
        .decode(segs[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("JWT header unreadable")?;
    if header["alg"] != "ES256" {
        return Err("JWT alg is not ES256".into());
    }
    let sig = B64
        .decode(segs[2])
        .map_err(|_| "JWT signature not base64url")?;
    let sig = p256::ecdsa::Signature::from_slice(&sig).map_err(|_| "JWT signature not 64 bytes")?;
    key.verify(format!("{}.{}", segs[0], segs[1]).as_bytes(), &sig)
        .map_err(|_| "JWT signature does not verify against k")?;
    let claims: Value = B64
        .decode(segs[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("JWT claims unreadable")?;
    if claims["aud"] != origin {
        return Err(format!("JWT aud is {} not {origin}", claims["aud"]));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().ok_or("JWT exp missing")?;
    if exp <= now || exp > now + 24 * 3600 {
        return Err("JWT exp not within 24 h".into());
    }
    let sub = claims["sub"].as_str().ok_or("JWT sub missing")?;
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err("JWT sub is neither mailto: nor https:".into());
    }
    Ok((claims, k.to_string()))
}

fn decrypt(sub: &Sub, body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("body too short for the aes128gcm header".into());
    }
    let salt = &body[..16];
    let rs = u32::from_be_bytes(body[16..20].try_into().unwrap()) as usize;
    let idlen = body[20] as usize;
    if idlen != 65 || body.len() < 21 + idlen + 17 {
        return Err("keyid is not a 65-byte point".into());
    }
    let as_public = &body[21..21 + idlen];
    let ct = &body[21 + idlen..];
    if ct.len() > rs {
        return Err("more than one record".into());
    }
    let as_key =
        p256::PublicKey::from_sec1_bytes(as_public).map_err(|_| "keyid is not a P-256 point")?;
    let shared = sub.secret.diffie_hellman(&as_key);
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(&sub.public);
    info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&sub.auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .unwrap();
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .unwrap();
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .unwrap();
    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&cek).unwrap();
    let mut plain = cipher
        .decrypt(&nonce.into(), ct)
        .map_err(|_| "body does not decrypt")?;
    while plain.last() == Some(&0) {
        plain.pop();
    }
    if plain.pop() != Some(2) {
        return Err("no last-record delimiter (0x02)".into());
    }
    Ok(plain)
}
