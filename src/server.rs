//! The HTTP server: hyper accept loop (listener and shutdown passed in), one `match` for routing, the
//! prototype's API, and the embedded assets.

// Handlers return early with the response to send (`Result<T, Response<Body>>`); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod metrics;
mod native;
mod signin;

use self::native::{
    cancel_turn, create_conversation, delete_conversation, events_poll, events_stream,
    get_conversation, get_turn, list_conversations, patch_conversation, post_message, status,
};
use crate::auth;
use crate::config::Shared;
use crate::store::Store;
use crate::turns::{Submit, SubmitError, Turns};

/// Response bodies: whole buffers now, streams later, behind one type.
pub type Body = BoxBody<Bytes, Infallible>;

/// The header that marks the supervisor's own `/health` probe, logged at debug level only.
pub const PROBE_HEADER: &str = "x-remote-agent-probe";

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// How long open connections get to finish after a shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// The web app, embedded at build time: (file name, content type, bytes). `/` is `index.html`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "compose.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/compose.js"),
    ),
    (
        "turn.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/turn.js"),
    ),
    (
        "markdown.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/markdown.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/api.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app.css"),
    ),
    (
        "sw.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/sw.js"),
    ),
    (
        "manifest.webmanifest",
        "application/manifest+json",
        include_bytes!("../assets/manifest.webmanifest"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../assets/icon.svg"),
    ),
    // iOS takes only a PNG for the home screen, and Android's install prompt wants one of 512 px.
    (
        "icon-180.png",
        "image/png",
        include_bytes!("../assets/icon-180.png"),
    ),
    (
        "icon-512.png",
        "image/png",
        include_bytes!("../assets/icon-512.png"),
    ),
];

/// An embedded asset; `no-cache` so that a new binary's app is picked up (the service worker keeps it offline).
fn asset(name: &str) -> Option<Response<Body>> {
    let (_, content_type, bytes) = ASSETS.iter().find(|(n, _, _)| *n == name)?;
    let mut resp = with_type(Response::new(full(Bytes::from_static(bytes))), content_type);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(resp)
}

/// What every handler shares.
pub struct App {
    pub settings: Arc<Shared>,
    pub store: Arc<Store>,
    pub turns: Turns,
    pub started: Instant,
    pub throttle: auth::Throttle,
    pub basic_cache: auth::BasicCache,
    pub requests: metrics::Requests,
}

/// Who is asking and through which door.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// The client's address (see [`client_ip`]).
    pub client: std::net::IpAddr,
    /// A loopback client of the local listener: this computer itself.
    pub local: bool,
    /// The browser is on HTTPS (our TLS, or Cloudflare's in front of the tunnel listener).
    pub secure: bool,
}

/// How a request proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// A browser sign-in: the hash of its cookie's token.
    Cookie(String),
    Basic,
}

/// Open connections at once across listeners; past it a connection gets a 503 and is closed. Local loopback
/// clients (the supervisor's health probe, the owner's own tools) are counted apart, against
/// [`MAX_LOCAL_CONNECTIONS`], so that neither kind can crowd the other out.
pub const MAX_CONNECTIONS: usize = 512;
/// Open connections of this computer's own clients on the local listener. Both caps together stay under the
/// usual limit of 1024 open files, with room for the database, logs and the turns' pipes.
pub const MAX_LOCAL_CONNECTIONS: usize = 384;
/// Local connections past [`MAX_LOCAL_CONNECTIONS`] that are still served, for `/health` alone (one request, then
/// closed), so that the supervisor's probe does not take a flood of local connections for a hung server.
const HEALTH_RESERVE: usize = 8;
/// How long a request's body may take to arrive once its handler starts reading it; then 408. A client that
/// stops halfway would otherwise hold its connection, and a slot under the cap, for ever.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// After our side of a connection is closed, how long what the client still sends is read and dropped, so that a
/// client still sending a body we refused early (413) reads the answer rather than a reset.
const LINGER: Duration = Duration::from_secs(2);
/// Request headers: at most this many, and at most this many bytes in all; past either, a JSON 431. Hyper itself
/// parses up to twice as many (and answers a bare 431 past that), so that the common case gets our clear error.
const MAX_HEADERS: usize = 64;
const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Which door a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The local listener (`HOST:PORT`).
    Local,
    /// The loopback listener that only cloudflared talks to: everything on it came through Cloudflare.
    Tunnel,
}

/// A bound listener, with TLS when the server terminates HTTPS itself.
pub struct Listener {
    pub tcp: TcpListener,
    pub via: Via,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves every listener until `shutdown` resolves, then stops accepting and gives open connections [`DRAIN`]
/// to finish.
pub async fn run(listeners: Vec<Listener>, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let caps = Caps {
        remote: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        local: Arc::new(Semaphore::new(MAX_LOCAL_CONNECTIONS)),
        health: Arc::new(Semaphore::new(HEALTH_RESERVE)),
    };
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(accept_loop(l, app.clone(), caps.clone(), stopped.clone())))
        .collect();
    shutdown.await;
    let _ = stop.send(true);
    for l in loops {
        let _ = l.await;
    }
}

/// The connection caps, shared by the listeners.
#[derive(Clone)]
struct Caps {
    remote: Arc<Semaphore>,
    local: Arc<Semaphore>,
    health: Arc<Semaphore>,
}

impl Caps {
    /// A slot for a new connection, and whether it is served for `/health` alone (from [`HEALTH_RESERVE`]).
    fn admit(&self, local: bool) -> Option<(OwnedSemaphorePermit, bool)> {
        let take = |cap: &Arc<Semaphore>| cap.clone().try_acquire_owned().ok();
        if !local {
            return take(&self.remote).map(|p| (p, false));
        }
        take(&self.local)
            .map(|p| (p, false))
            .or_else(|| take(&self.health).map(|p| (p, true)))
    }
}

async fn accept_loop(
    listener: Listener,
    app: Arc<App>,
    caps: Caps,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The header-read timeout also closes a kept-alive connection that sends nothing (slowloris, idle).
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_headers(2 * MAX_HEADERS);
    let via = listener.via;
    let secure = listener.tls.is_some() || via == Via::Tunnel;
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(pair) => { backoff = Duration::from_millis(5); pair }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            () = signalled(&mut stop) => break,
        };
        // This computer's own connections (the supervisor's probe, the owner's tools) are counted apart, whatever
        // address serve listens on: from here, the peer's address is the very one it connected to.
        let local = via == Via::Local
            && (peer.ip().is_loopback() || stream.local_addr().is_ok_and(|l| l.ip() == peer.ip()));
        let Some((permit, health_only)) = caps.admit(local) else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let door = Door {
            via,
            secure,
            tls: listener.tls.is_some(),
            addr: stream.local_addr().ok().map(|a| a.ip()),
        };
        let stream = Lingering::new(stream);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            // The slot is held as long as the service, which the connection owns until it has closed.
            let _held = &permit;
            async move {
                if !health_only {
                    return Ok::<_, Infallible>(handle(&app, req, peer, door).await);
                }
                let mut resp = if req.uri().path() == "/health" {
                    handle(&app, req, peer, door).await
                } else {
                    let mut resp = error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too many open connections; try again shortly",
                    );
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(1));
                    resp
                };
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                Ok(resp)
            }
        });
        match &listener.tls {
            None => {
                let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            Some(acceptor) => {
                // The handshake runs on the connection's own task, under a deadline, so a slow client holds up
                // no one else.
                let handshake = acceptor.accept(stream);
                let http = http.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), handshake).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let conn = watcher.watch(http.serve_connection(TokioIo::new(tls), service));
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {} s; closing them",
            DRAIN.as_secs()
        );
    }
}

/// A connection whose closing lingers: after our FIN, what the client still sends is read and dropped until it
/// closes too or [`LINGER`] has passed. Closing a socket with unread input makes the kernel send a reset, which
/// can destroy an answer the client has not read yet (a 413 sent before the body it is still sending).
struct Lingering {
    stream: tokio::net::TcpStream,
    until: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Lingering {
    fn new(stream: tokio::net::TcpStream) -> Self {
        Lingering {
            stream,
            until: None,
        }
    }
}

impl tokio::io::AsyncRead for Lingering {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Lingering {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        use tokio::io::AsyncRead as _;
        if self.until.is_none() {
            if let Err(e) =
                std::task::ready!(std::pin::Pin::new(&mut self.stream).poll_shutdown(cx))
            {
                return Poll::Ready(Err(e));
            }
            self.until = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut sink = [0u8; 8192];
        // A client sending flat out is read in rounds, so that this task yields to others between them.
        for _ in 0..64 {
            if self
                .until
                .as_mut()
                .is_some_and(|t| t.as_mut().poll(cx).is_ready())
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = tokio::io::ReadBuf::new(&mut sink);
            match std::pin::Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"error":"too many open connections; try again shortly"}"#;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(resp.as_bytes())).await;
}

/// Resolves once the flag is set (the watch's guard is dropped inside, so callers stay `Send`).
pub async fn signalled(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// A TLS acceptor from PEM files: the certificate chain and its private key.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the TLS certificate and key do not fit together")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Handles one request: routes it, adds the security headers, and logs it (method, path without the query,
/// status, time; never a header).
pub async fn handle(
    app: &App,
    req: Request<Incoming>,
    peer: SocketAddr,
    door: Door,
) -> Response<Body> {
    let Door { via, secure, .. } = door;
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let probe = req.headers().contains_key(PROBE_HEADER);
    let client = client_ip(&req, peer, via);
    // This computer's own clients (the supervisor's probe, the owner's scripts) are not rate-limited.
    let ctx = Ctx {
        client,
        local: via == Via::Local && peer.ip().is_loopback(),
        secure,
    };
    // The path's segments, decoded only where they hold a %-escape (almost never).
    let decoded: Option<Vec<std::borrow::Cow<str>>> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode_segment)
        .collect();
    let segments: Option<Vec<&str>> = decoded
        .as_ref()
        .map(|d| d.iter().map(|s| s.as_ref()).collect());
    let head_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let mut resp = if head_bytes > MAX_HEAD_BYTES {
        error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request headers over {MAX_HEAD_BYTES} bytes"),
        )
    } else if req.headers().len() > MAX_HEADERS {
        error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("more than {MAX_HEADERS} request headers"),
        )
    } else if path != "/health"
        && let Err(host) = host_allowed(app, &req, door)
    {
        // A page whose own name was made to resolve to this computer (DNS rebinding) sends that name.
        error(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer for the host {host:?}; if that is a name of this computer, add it \
                 to [server] allowed_hosts in the config file"
            ),
        )
    } else {
        match &segments {
            Some(segments) => route(app, req, &path, segments, ctx).await,
            None => error(
                StatusCode::BAD_REQUEST,
                "the path is not valid percent-encoded UTF-8",
            ),
        }
    };
    let h = resp.headers_mut();
    if path.starts_with("/api/") {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if secure {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    let door = if via == Via::Tunnel { " (tunnel)" } else { "" };
    let status = resp.status().as_u16();
    let label = segments.as_deref().map_or("other", metrics::route_label);
    app.requests.count(&method, label, status);
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    // A pairing token in the log would sign in whoever reads it (a log shipper, a shared journal).
    // Any spelling counts (`/PAIR/…`, `/x/../pair/…`): a mistyped link still carries a live token.
    let pairing = match segments.as_deref() {
        Some(segments) => segments.iter().any(|s| s.eq_ignore_ascii_case("pair")),
        None => path.to_ascii_lowercase().contains("pair"),
    };
    let path = if pairing {
        "/pair/[redacted]".to_string()
    } else {
        path
    };
    if probe && path == "/health" {
        // `up` asks every second; its probes would bury the log.
        tracing::debug!(target: "remote_agent::http", "{client}{door} {method} {path} {status} {ms:.1}ms (probe)");
    } else {
        tracing::info!(target: "remote_agent::http", "{client}{door} {method} {path} {status} {ms:.1}ms");
    }
    resp
}

/// The listener a request came through, and what the connection knows of itself.
#[derive(Debug, Clone, Copy)]
pub struct Door {
    pub via: Via,
    /// The browser is on HTTPS (our TLS, or Cloudflare's in front of the tunnel listener).
    pub secure: bool,
    /// This server terminates TLS on this listener.
    pub tls: bool,
    /// The address the client connected to.
    pub addr: Option<std::net::IpAddr>,
}

/// Whether the request's host (`Host`, or the target's authority) names this server on its door; the error is the
/// host refused. The local listener answers `localhost`, loopback addresses, the address the client connected to
/// and the configured `--host`; the tunnel listener the tunnel's hostnames alone. A request without a host is no
/// browser's, and over our own TLS the certificate already ties the name, so both pass.
fn host_allowed(app: &App, req: &Request<Incoming>, door: Door) -> Result<(), String> {
    let raw = match req.uri().authority() {
        Some(authority) => authority.as_str(),
        None => match req.headers().get(header::HOST) {
            Some(value) => value.to_str().map_err(|_| "(not text)".to_string())?,
            None => return Ok(()),
        },
    };
    if door.via == Via::Local && door.tls {
        return Ok(());
    }
    let refused = || Err(raw.chars().take(100).collect::<String>());
    let Some(name) = host_name(raw) else {
        return refused();
    };
    let ok = match door.via {
        Via::Local => {
            let settings = app.settings.get();
            local_host(&name, door.addr, &settings.host) || settings.allowed_hosts.contains(&name)
        }
        Via::Tunnel => tunnel_host(&name, &app.settings.get().state_dir),
    };
    if ok { Ok(()) } else { refused() }
}

/// The host of an authority (`name`, `name:port`, `[v6]`, `[v6]:port`), lowercased, without a trailing dot.
fn host_name(authority: &str) -> Option<String> {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let name = match authority.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            if !(after.is_empty() || after.strip_prefix(':').is_some_and(digits)) {
                return None;
            }
            inside.parse::<std::net::Ipv6Addr>().ok()?;
            inside
        }
        None => match authority.split_once(':') {
            Some((name, port)) if digits(port) => name,
            Some(_) => return None,
            None => authority,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// A host the local listener answers: this computer by name or loopback address, the address the client
/// reached, or the configured `--host`.
fn local_host(name: &str, reached: Option<std::net::IpAddr>, configured: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let configured = configured.trim_start_matches('[').trim_end_matches(']');
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback()
                || reached.is_some_and(|r| r.to_canonical() == ip)
                || configured
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|c| c.to_canonical() == ip)
        }
        Err(_) => configured.trim_end_matches('.').eq_ignore_ascii_case(name),
    }
}

/// The hostnames the tunnel routes to us, from `up`'s state file: None when its hostname is not known to us (a
/// named tunnel run from a token, whose routes live in Cloudflare's dashboard), then any host passes.
fn tunnel_hostnames(state: Option<&Value>) -> Option<Vec<String>> {
    let Some(tunnel) = state.map(|s| &s["tunnel"]) else {
        return Some(Vec::new());
    };
    let mut names: Vec<String> = tunnel["hostnames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str())
        .filter_map(host_name)
        .collect();
    if let Some(url) = tunnel["url"].as_str()
        && let Some(rest) = url.strip_prefix("https://")
        && let Some(name) = host_name(rest.split('/').next().unwrap_or(rest))
    {
        names.push(name);
    }
    if names.is_empty() && tunnel["kind"] == "named" {
        return None;
    }
    Some(names)
}

/// Whether the tunnel routes `name` to us. The state file is read at most once a second, and at once for a name
/// not known, since a quick tunnel that restarts gets a new hostname.
fn tunnel_host(name: &str, state_dir: &std::path::Path) -> bool {
    struct Cached {
        read: Instant,
        names: Option<Vec<String>>,
    }
    static CACHE: std::sync::Mutex<Option<Cached>> = std::sync::Mutex::new(None);
    let matches = |names: &Option<Vec<String>>| match names {
        None => true,
        Some(names) => names.iter().any(|n| match n.strip_prefix("*.") {
            Some(domain) => name
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => n == name,
        }),
    };
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = cache.as_ref()
        && c.read.elapsed() < Duration::from_secs(1)
        && matches(&c.names)
    {
        return true;
    }
    let names = tunnel_hostnames(crate::up::recorded_state(state_dir).as_ref());
    let ok = matches(&names);
    *cache = Some(Cached {
        read: Instant::now(),
        names,
    });
    ok
}

/// Who is asking: the socket peer, or on the tunnel listener (where every peer is cloudflared) the address
/// Cloudflare puts in `CF-Connecting-IP`. Nowhere else is that header believed.
fn client_ip(req: &Request<Incoming>, peer: SocketAddr, via: Via) -> std::net::IpAddr {
    let forwarded = (via == Via::Tunnel)
        .then(|| {
            req.headers()
                .get("cf-connecting-ip")?
                .to_str()
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .flatten();
    forwarded.unwrap_or(peer.ip())
}

async fn route(
    app: &App,
    req: Request<Incoming>,
    path: &str,
    segments: &[&str],
    ctx: Ctx,
) -> Response<Body> {
    // HEAD is GET without the body (hyper drops it).
    let method = match req.method() {
        &Method::HEAD => Method::GET,
        m => m.clone(),
    };
    // Public routes first; everything else needs credentials before we even say whether it exists.
    match (&method, segments) {
        (&Method::GET, [""]) => return asset("index.html").expect("embedded"),
        (&Method::GET, [name]) if let Some(resp) = asset(name) => return resp,
        (&Method::GET, ["health"]) => {
            // Probed often (the supervisor, load balancers): a constant, built at compile time.
            const HEALTH: &str = concat!(
                r#"{"status":"healthy","service":"remote-agent","version":""#,
                env!("CARGO_PKG_VERSION"),
                r#""}"#
            );
            return with_type(
                Response::new(full(Bytes::from_static(HEALTH.as_bytes()))),
                "application/json",
            );
        }
        (&Method::POST, ["api", "login"]) => return signin::login(app, req, ctx).await,
        (&Method::GET, ["api", "session"]) => return signin::session(app, &req),
        (&Method::GET, ["pair", token]) => return signin::pair_page(app, token),
        (&Method::POST, ["pair", token]) => return signin::pair(app, &req, token, ctx),
        (_, [""] | ["health"] | ["pair", _]) => return method_not_allowed("GET"),
        (_, ["api", "login"]) => return method_not_allowed("POST"),
        (_, ["api", "session"]) => return method_not_allowed("GET"),
        _ => {}
    }
    let signed = match authenticate(app, &req, ctx).await {
        Ok(signed) => signed,
        Err(resp) => return resp,
    };
    if !ctx.local
        && let Err(wait) = app.throttle.request(ctx.client)
    {
        return too_many(wait, "too many requests; slow down");
    }
    // A browser that holds credentials must not act for another site's page; signed in by cookie, it must
    // even say that the request comes from our own.
    let same_site = match signed {
        Signed::Cookie(_) => auth::same_origin_strict(req.headers(), ctx.secure),
        Signed::Basic => auth::same_origin(req.headers(), ctx.secure),
    };
    if method != Method::GET && !same_site {
        return error(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    use Method as M;
    match (&method, segments) {
        (&M::POST, ["api", "chat"]) => chat(app, req).await,
        (&M::POST, ["api", "reset"]) => reset(app, req).await,
        (&M::GET, ["api", "sessions"]) => sessions(app),
        (&M::GET, ["api", "status"]) => status(app),
        (&M::GET, ["metrics"]) => metrics::metrics(app),
        (&M::POST, ["api", "logout"]) => signin::logout(app, &signed, ctx),
        (&M::GET, ["api", "conversations"]) => list_conversations(app),
        (&M::POST, ["api", "conversations"]) => create_conversation(app, req).await,
        (&M::GET, ["api", "conversations", id]) => get_conversation(app, &req, id),
        (&M::PATCH, ["api", "conversations", id]) => patch_conversation(app, req, id).await,
        (&M::DELETE, ["api", "conversations", id]) => delete_conversation(app, id).await,
        (&M::POST, ["api", "conversations", id, "messages"]) => post_message(app, req, id).await,
        (&M::GET, ["api", "turns", id]) => get_turn(app, id),
        (&M::GET | &M::POST, ["api", "turns", id, "events"]) => events_stream(app, &req, id),
        (&M::GET, ["api", "turns", id, "events.json"]) => events_poll(app, &req, id).await,
        (&M::POST, ["api", "turns", id, "cancel"]) => cancel_turn(app, id),
        (_, ["api", "chat" | "reset"] | ["api", "conversations", _, "messages"]) => {
            method_not_allowed("POST")
        }
        (_, ["api", "turns", _, "cancel"]) => method_not_allowed("POST"),
        (
            _,
            ["api", "sessions" | "status"]
            | ["api", "turns", _]
            | ["api", "turns", _, "events.json"],
        ) => method_not_allowed("GET"),
        (_, ["api", "conversations"]) => method_not_allowed("GET, POST"),
        (_, ["api", "conversations", _]) => method_not_allowed("GET, PATCH, DELETE"),
        (_, ["api", "turns", _, "events"]) => method_not_allowed("GET, POST"),
        _ => error(StatusCode::NOT_FOUND, format!("no route for {path}")),
    }
}

/// Checks the credentials (a sign-in cookie, else HTTP Basic) with the brute-force defences of
/// [`auth::Throttle::verify`]: a locked-out or over-eager client gets 429, a failed attempt is counted and logged.
async fn authenticate(
    app: &App,
    req: &Request<Incoming>,
    ctx: Ctx,
) -> Result<Signed, Response<Body>> {
    if auth::session_cookie_repeated(req.headers()) {
        let mut resp = error(
            StatusCode::BAD_REQUEST,
            "the request carries more than one ra_session cookie; refused",
        );
        resp.headers_mut()
            .insert(header::SET_COOKIE, auth::set_cookie(None, ctx.secure));
        return Err(resp);
    }
    if let Some(token) = auth::session_cookie(req.headers()) {
        let hash = auth::sha256_hex(token.as_bytes());
        match app.store.session_valid(&hash) {
            Ok(true) => return Ok(Signed::Cookie(hash)),
            Ok(false) => {}
            Err(e) => return Err(internal(e)),
        }
    }
    if !req.headers().contains_key(header::AUTHORIZATION) {
        return Err(unauthorized(req.headers()));
    }
    // Locked out: refused before even the cache of verified headers, so a lockout holds for every password.
    if let Some(wait) = app.throttle.locked(ctx.client) {
        return Err(refused(auth::Refused::Locked(wait)));
    }
    let settings = app.settings.get();
    match auth::basic_verified(
        req.headers(),
        &settings.username,
        &settings.password,
        &app.basic_cache,
        &app.throttle,
        ctx.client,
    )
    .await
    {
        Ok(true) => Ok(Signed::Basic),
        Ok(false) => Err(unauthorized(req.headers())),
        Err(r) => Err(refused(r)),
    }
}

/// 401, with the Basic challenge that `auth` says this client should get.
fn unauthorized(headers: &hyper::HeaderMap) -> Response<Body> {
    let mut resp = error(StatusCode::UNAUTHORIZED, "authentication required");
    if let Some(challenge) = auth::basic_challenge(headers) {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    resp
}

/// 429 for a password that was not checked, saying how long to wait.
fn refused(why: auth::Refused) -> Response<Body> {
    let (message, wait) = why.message();
    too_many(wait, &message)
}

/// 429 with `Retry-After` in whole seconds.
fn too_many(wait: Duration, message: &str) -> Response<Body> {
    let mut resp = error(StatusCode::TOO_MANY_REQUESTS, message);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

#[derive(Deserialize)]
struct ChatRequest {
    message: Option<String>,
    conv_id: Option<String>,
    session_id: Option<String>,
}

async fn chat(app: &App, req: Request<Incoming>) -> Response<Body> {
    let body: ChatRequest = match read_json(req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let message = match non_empty_message(body.message) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let conv_id = body.conv_id.unwrap_or_else(|| "default".into());
    if let Err(resp) = check_conversation_id("conv_id", &conv_id) {
        return resp;
    }
    if let Some(id) = &body.session_id
        && !is_uuid(id)
    {
        return error(StatusCode::BAD_REQUEST, "session_id must be a UUID");
    }
    if let Err(e) = app.turns.ready() {
        return submit_error(e);
    }
    let project = app.settings.get().default_project().display().to_string();
    if let Err(e) = app.store.ensure_conversation(&conv_id, &project) {
        return internal(e);
    }
    let waiter = match app.turns.submit(Submit {
        conversation_id: conv_id,
        prompt: message,
        resume: body.session_id,
        client_id: None,
    }) {
        Ok((_, Some(waiter))) => waiter,
        Ok((_, None)) => return internal("a new turn came back without a waiter"),
        Err(e) => return submit_error(e),
    };
    let Some(ended) = waiter.ended().await else {
        return internal("the turn ended unseen");
    };
    if ended.not_found {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            ended.error.unwrap_or_default(),
        );
    }
    let success = ended.status == "succeeded";
    json(
        StatusCode::OK,
        &json!({
            "response": ended.response.unwrap_or_default(),
            "session_id": ended.session_id,
            "cost": ended.cost.unwrap_or(0.0),
            "turns": ended.num_turns.unwrap_or(0),
            "success": success,
            "error": if success { None } else { ended.error },
        }),
    )
}

#[derive(Deserialize, Default)]
struct ResetRequest {
    conv_id: Option<String>,
}

async fn reset(app: &App, req: Request<Incoming>) -> Response<Body> {
    // The prototype read `conv_id` from the query; a JSON body naming it is honoured too, rather than
    // silently resetting `default`.
    let from_query = query_param(req.uri().query(), "conv_id");
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    let from_body = match (&from_query, has_body) {
        (None, true) => match read_json::<ResetRequest>(req).await {
            Ok(body) => body.conv_id,
            Err(resp) => return resp,
        },
        _ => None,
    };
    let conv_id = from_query.or(from_body).unwrap_or_else(|| "default".into());
    if let Err(resp) = check_conversation_id("conv_id", &conv_id) {
        return resp;
    }
    app.turns.cancel_conversation(&conv_id).await;
    if let Err(e) = app.store.delete_conversation(&conv_id) {
        return internal(e);
    }
    json(
        StatusCode::OK,
        &json!({"message": "Conversation reset successfully", "conv_id": conv_id}),
    )
}

fn sessions(app: &App) -> Response<Body> {
    let conversations = match app.store.conversations() {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let map: serde_json::Map<String, Value> = conversations
        .into_iter()
        .map(|c| {
            let entry = json!({
                "session_id": c.session_id,
                "created_at": c.created_at,
                "last_message_at": c.last_message_at.unwrap_or(c.updated_at),
                "turn_count": c.turn_count,
                "last_message": c.last_message,
                "total_cost_usd": c.total_cost_usd,
            });
            (c.id, entry)
        })
        .collect();
    json(StatusCode::OK, &Value::Object(map))
}

fn submit_error(e: SubmitError) -> Response<Body> {
    match e {
        SubmitError::NotFound(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        SubmitError::ShuttingDown => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        SubmitError::QueueFull => error(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        SubmitError::Store(e) => internal(e),
    }
}

/// The message of a request, which must have some text.
fn non_empty_message(message: Option<String>) -> Result<String, Response<Body>> {
    message.filter(|m| !m.trim().is_empty()).ok_or_else(|| {
        error(
            StatusCode::BAD_REQUEST,
            "message must be a non-empty string",
        )
    })
}

/// A conversation id is `[A-Za-z0-9_-]{1,64}`.
pub fn valid_conversation_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_conversation_id(field: &str, id: &str) -> Result<(), Response<Body>> {
    if valid_conversation_id(id) {
        Ok(())
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            format!("{field} must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"),
        ))
    }
}

/// A UUID in its usual hyphenated form (what the CLI prints and accepts).
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// [`BODY_TIMEOUT`], or the milliseconds in `REMOTE_AGENT_BODY_TIMEOUT_MS` (undocumented: it lets the tests see
/// the deadline without waiting for it).
fn body_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("REMOTE_AGENT_BODY_TIMEOUT_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(BODY_TIMEOUT, Duration::from_millis)
            // Only ever shorter, and never so short that no body could arrive.
            .clamp(Duration::from_millis(100), BODY_TIMEOUT)
    })
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes; the error is the response to send.
async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {} bytes", MAX_BODY),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), MAX_BODY).collect();
    let bytes = match tokio::time::timeout(body_timeout(), collect).await {
        Err(_) => {
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    body_timeout().as_secs_f64()
                ),
            ));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("could not read the body: {e}"),
            ));
        }
    };
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))?;
    if !value.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    }
    // Well-formed JSON with a field of the wrong type or an unknown one: say that, not "invalid JSON".
    serde_json::from_value(value).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("a field of the body does not fit: {e}"),
        )
    })
}

/// A path segment with its %-escapes decoded (a `+` stays a `+` in a path); borrowed when there are none.
fn decode_segment(segment: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !segment.contains('%') {
        return Some(std::borrow::Cow::Borrowed(segment));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

/// The first value of `name` in a query string, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name).then(|| percent_decode(v))?
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

fn with_type(mut resp: Response<Body>, content_type: &'static str) -> Response<Body> {
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response.
pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    with_type(resp, "application/json")
}

/// The error shape of every API answer: `{"error": "…"}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(status, &json!({ "error": message.into() }))
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// A failure of ours: 500, with the details in the log only. A full disk (507) or a damaged database (503) is
/// not a bug and is said so, in the words of docs/api.md.
fn internal(e: impl std::fmt::Display + 'static) -> Response<Body> {
    let fault = (&e as &dyn std::any::Any)
        .downcast_ref::<rusqlite::Error>()
        .and_then(crate::store::Fault::of);
    tracing::error!("internal error: {e}");
    match fault {
        Some(f @ crate::store::Fault::DiskFull) => {
            error(StatusCode::INSUFFICIENT_STORAGE, f.message())
        }
        Some(f @ crate::store::Fault::Damaged) => {
            error(StatusCode::SERVICE_UNAVAILABLE, f.message())
        }
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids() {
        assert!(valid_conversation_id("default"));
        assert!(valid_conversation_id(&"a".repeat(64)));
        for bad in ["", "a b", "../x", "x\r\n", "é", &"a".repeat(65)] {
            assert!(!valid_conversation_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("6e656139-0000-4000-8000-00000000abcd"));
        for bad in [
            "6e656139000040008000000000000000",
            "--version",
            "",
            "6e656139-0000-4000-8000-00000000abcg",
        ] {
            assert!(!is_uuid(bad), "{bad:?}");
        }
    }

    #[test]
    fn query_params_decode() {
        assert_eq!(
            query_param(Some("a=1&conv_id=my%2Did"), "conv_id").as_deref(),
            Some("my-id")
        );
        assert_eq!(
            query_param(Some("conv_id=a+b"), "conv_id").as_deref(),
            Some("a b")
        );
        assert_eq!(query_param(Some("conv_id=%zz"), "conv_id"), None);
        assert_eq!(query_param(None, "conv_id"), None);
    }

    #[test]
    fn host_names() {
        assert_eq!(
            host_name("Example.COM:8000").as_deref(),
            Some("example.com")
        );
        assert_eq!(host_name("localhost.").as_deref(), Some("localhost"));
        assert_eq!(host_name("[::1]:8000").as_deref(), Some("::1"));
        assert_eq!(host_name("[::1]").as_deref(), Some("::1"));
        for bad in [
            "",
            ":80",
            "::1",
            "[::1",
            "[::1]x",
            "[zz]",
            "host:",
            "host:http",
            "a:1:2",
        ] {
            assert_eq!(host_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn local_hosts() {
        let lan: std::net::IpAddr = "192.168.1.10".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:192.168.1.10".parse().unwrap();
        assert!(local_host("localhost", None, "127.0.0.1"));
        assert!(local_host("127.0.0.2", None, "127.0.0.1"));
        assert!(local_host("::1", None, "127.0.0.1"));
        assert!(local_host("192.168.1.10", Some(lan), "0.0.0.0"));
        assert!(local_host("192.168.1.10", Some(mapped), "::"));
        assert!(local_host("192.168.1.10", None, "192.168.1.10"));
        assert!(local_host("mybox.lan", None, "MyBox.lan."));
        assert!(local_host("fd00::2", None, "[fd00::2]"));
        assert!(!local_host("192.168.1.11", Some(lan), "0.0.0.0"));
        assert!(!local_host("evil.example", Some(lan), "0.0.0.0"));
        // Unspecified is what browsers reach this computer by too; no name is involved, so no rebinding.
        assert!(local_host("0.0.0.0", Some(lan), "0.0.0.0"));
    }

    #[test]
    fn tunnel_hostnames_from_the_state_file() {
        let names = |v: Value| tunnel_hostnames(Some(&v));
        assert_eq!(tunnel_hostnames(None), Some(vec![]));
        assert_eq!(
            names(json!({"tunnel": {"kind": "quick", "url": "https://a-b.trycloudflare.com"}})),
            Some(vec!["a-b.trycloudflare.com".to_string()])
        );
        assert_eq!(
            names(json!({"tunnel": {"kind": "quick", "url": null}})),
            Some(vec![])
        );
        // A token tunnel's routes are not known here.
        assert_eq!(
            names(json!({"tunnel": {"kind": "named", "url": "(the hostname your tunnel routes)"}})),
            None
        );
        assert_eq!(
            names(json!({"tunnel": {"kind": "none", "url": null}})),
            Some(vec![])
        );
    }

    #[tokio::test]
    async fn storage_faults_are_said_in_plain_words() {
        use http_body_util::BodyExt;
        use rusqlite::ffi;
        let fault = |code| rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        for (e, status, said) in [
            (fault(ffi::SQLITE_FULL), 507, "disk full"),
            (
                fault(ffi::SQLITE_CORRUPT),
                503,
                "database damaged: run `remote-agent doctor`",
            ),
            (
                fault(ffi::SQLITE_NOTADB),
                503,
                "database damaged: run `remote-agent doctor`",
            ),
            (fault(ffi::SQLITE_MISUSE), 500, "internal error"),
        ] {
            let resp = internal(e);
            assert_eq!(resp.status().as_u16(), status);
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(
                serde_json::from_slice::<Value>(&bytes).unwrap(),
                json!({ "error": said })
            );
        }
        assert_eq!(internal("x").status().as_u16(), 500);
    }
}
