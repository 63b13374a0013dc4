//! Delivery: one task owns the outbox (docs/architecture.md, "Push"). It sends the row due first over hyper (rustls
//! with the webpki roots; plain TCP only to a loopback endpoint that `REMOTE_AGENT_PUSH_ALLOW_LOOPBACK=1` allows),
//! deletes it on 201, deletes the subscription on 404/410, and retries 429/5xx and network failures with a backoff
//! that honours `Retry-After`, a few times, then drops the message. Logs name the subscription id, never its
//! endpoint (a capability URL).

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::Uri;
use hyper_util::rt::TokioIo;

use super::Core;
use crate::store::{Outgoing, Store};

/// Tries of one message before it is dropped.
pub const MAX_ATTEMPTS: i64 = 4;
/// The longest wait between tries, whatever `Retry-After` says.
const MAX_DELAY: u64 = 3600;
/// Connecting, the TLS handshake, and the whole exchange each get this long.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The environment variable that lets tests push to a plain-HTTP loopback endpoint (not a user setting).
pub const ALLOW_LOOPBACK: &str = "REMOTE_AGENT_PUSH_ALLOW_LOOPBACK";

/// Now, in unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An endpoint we may send to: `https://…`, or `http://127.0.0.1:…` / `http://[::1]:…` under
/// [`ALLOW_LOOPBACK`]. Returns the parsed URI, or why not.
pub fn check_endpoint(endpoint: &str) -> Result<Uri, &'static str> {
    let uri: Uri = endpoint.parse().map_err(|_| "endpoint is not a URL")?;
    let host = uri.host().ok_or("endpoint is not a URL")?;
    // A push service is a public name: an address or a bare name (localhost, a machine on the LAN) is refused,
    // so that a subscription cannot point the server at a service on this computer or its network.
    let literal = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .is_ok();
    let bare = !host.contains('.') || host.eq_ignore_ascii_case("localhost");
    match uri.scheme_str() {
        Some("https") if literal || bare => {
            Err("endpoint must be a push service's https:// URL (a public host name)")
        }
        Some("https") => Ok(uri),
        Some("http")
            if matches!(host, "127.0.0.1" | "[::1]")
                && std::env::var(ALLOW_LOOPBACK).is_ok_and(|v| v == "1") =>
        {
            Ok(uri)
        }
        _ => Err("endpoint must be an https:// URL"),
    }
}

/// The VAPID audience of an endpoint: its origin.
fn audience(uri: &Uri) -> Option<String> {
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// How one try ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Gone,
    Retry(Option<u64>),
    Refused(u16),
}

/// The delivery task: runs until the store is gone.
pub async fn run(store: Weak<Store>, core: Arc<Core>) {
    loop {
        let Some(next) = store.upgrade().map(|s| s.next_push()) else {
            return;
        };
        match next {
            Err(e) => {
                tracing::warn!("push outbox unreadable: {e}");
                sleep_or_wake(&core, Duration::from_secs(5)).await;
            }
            Ok(None) => core.wake.notified().await,
            Ok(Some(row)) => {
                let due = row.next_at.max(0) as u64;
                let now = now();
                if due > now {
                    sleep_or_wake(&core, Duration::from_secs(due - now)).await;
                    continue;
                }
                let Some(store) = store.upgrade() else { return };
                deliver(&store, &core, row).await;
            }
        }
    }
}

/// The first whole second (the outbox's unit) at least `delay` seconds from now: a service that said "retry after 1 s"
/// is not asked again a moment later because a second boundary fell in between.
fn not_before(delay: u64) -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs() + u64::from(since.subsec_nanos() > 0) + delay
}

async fn sleep_or_wake(core: &Core, wait: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = core.wake.notified() => {}
    }
}

/// Sends one outbox row and records what came of it; the log line follows the store's change, so a line read
/// from the log is already true of the outbox.
async fn deliver(store: &Store, core: &Core, row: Outgoing) {
    let result = try_deliver(store, core, &row).await;
    let sub = &row.subscription_id;
    let logged = |e: Result<(), rusqlite::Error>| {
        if let Err(e) = e {
            tracing::warn!("push outbox: {e}");
        }
    };
    match result {
        Ok(Outcome::Delivered) => logged(store.push_delivered(row.id)),
        Ok(Outcome::Gone) => {
            logged(store.delete_push_subscription(sub).map(|_| ()));
            tracing::info!("push subscription {sub} is gone (404/410): removed");
        }
        Ok(Outcome::Refused(status)) => {
            logged(store.delete_push(row.id));
            tracing::warn!("push to subscription {sub} refused with {status}: message dropped");
        }
        Ok(Outcome::Retry(after)) | Err(Failure::Retry(after)) => {
            if row.attempts + 1 >= MAX_ATTEMPTS {
                logged(store.delete_push(row.id));
                tracing::warn!(
                    "push to subscription {sub} failed {} times: message dropped",
                    row.attempts + 1
                );
            } else {
                let backoff = 2u64.pow(row.attempts.clamp(0, 10) as u32 + 1);
                let delay = after.unwrap_or(backoff).clamp(1, MAX_DELAY);
                tracing::info!("push to subscription {sub} will be retried in {delay} s");
                logged(store.push_attempted(row.id, not_before(delay) as i64));
            }
        }
        Err(Failure::Drop(why)) => {
            logged(store.delete_push(row.id));
            tracing::warn!("push to subscription {sub} cannot be sent ({why}): message dropped");
        }
    }
}

/// Why a try did not get an answer.
enum Failure {
    /// Worth another try (network, timeout), after this many seconds if known.
    Retry(Option<u64>),
    /// Never going to work (no such subscription, bad keys, no VAPID key).
    Drop(String),
}

async fn try_deliver(store: &Store, core: &Core, row: &Outgoing) -> Result<Outcome, Failure> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let sub = match store.push_subscription(&row.subscription_id) {
        Ok(Some(sub)) => sub,
        Ok(None) => return Err(Failure::Drop("no such subscription".into())),
        Err(e) => return Err(Failure::Drop(e.to_string())),
    };
    let uri = check_endpoint(&sub.endpoint).map_err(|e| Failure::Drop(e.into()))?;
    let audience = audience(&uri).ok_or_else(|| Failure::Drop("endpoint has no origin".into()))?;
    let vapid = core.vapid().map_err(|e| Failure::Drop(format!("{e:#}")))?;
    let (Ok(p256dh), Ok(auth)) = (B64.decode(&sub.p256dh), B64.decode(&sub.auth)) else {
        return Err(Failure::Drop("bad keys".into()));
    };
    let body = super::ece::encrypt(&p256dh, &auth, row.payload.as_bytes())
        .map_err(|e| Failure::Drop(format!("{e:#}")))?;
    // The origin form (path and query) with a Host header, as a client speaking to the server itself does; the
    // absolute form is for proxies, and push services need not take it.
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::post(target)
        .header(
            hyper::header::HOST,
            uri.authority().map(|a| a.as_str()).unwrap_or(""),
        )
        .header("TTL", row.ttl.max(0).to_string())
        .header("Urgency", &row.urgency)
        .header(hyper::header::CONTENT_ENCODING, "aes128gcm")
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .header(
            hyper::header::AUTHORIZATION,
            vapid.authorization(&audience, now()),
        );
    if let Some(topic) = &row.topic {
        req = req.header("Topic", topic);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| Failure::Drop("bad request".into()))?;
    let resp = tokio::time::timeout(TIMEOUT, send(&uri, req))
        .await
        .map_err(|_| Failure::Retry(None))?
        .map_err(|e| {
            tracing::info!("push to subscription {} failed: {e}", row.subscription_id);
            Failure::Retry(None)
        })?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok(match status {
        200..=299 => Outcome::Delivered,
        404 | 410 => Outcome::Gone,
        429 | 500..=599 => Outcome::Retry(retry_after),
        s => Outcome::Refused(s),
    })
}

/// One request on a new connection.
async fn send(
    uri: &Uri,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect((host, port))).await??;
    tcp.set_nodelay(true)?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())?;
        let tls = tokio::time::timeout(TIMEOUT, tls().connect(name, tcp)).await??;
        exchange(TokioIo::new(tls), req).await
    } else {
        exchange(TokioIo::new(tcp), req).await
    }
}

async fn exchange<T>(
    io: T,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender.send_request(req).await?)
}

/// The TLS client: the webpki roots, HTTP/1.1.
fn tls() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https() {
        assert!(check_endpoint("https://fcm.googleapis.com/fcm/send/abc").is_ok());
        assert!(check_endpoint("http://push.example/x").is_err());
        assert!(check_endpoint("ftp://push.example/x").is_err());
        assert!(check_endpoint("not a url").is_err());
        for inside in [
            "https://127.0.0.1/x",
            "https://[::1]:8443/x",
            "https://192.168.1.10/x",
            "https://localhost/x",
            "https://nas/x",
        ] {
            assert!(check_endpoint(inside).is_err(), "{inside}");
        }
        assert_eq!(
            audience(&check_endpoint("https://push.example:8443/a/b?c").unwrap()).unwrap(),
            "https://push.example:8443"
        );
    }
}
