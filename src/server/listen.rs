//! The doors: accept loops over the bound listeners (passed in, with the shutdown signal), the connection caps,
//! the caps on a request's head, TLS, and the lingering close that lets a refused client read its answer.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::respond::{Body, error};
use super::{App, handle};

/// How long open connections get to finish after a shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

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
    /// The bound socket.
    pub tcp: TcpListener,
    /// Which door it is.
    pub via: Via,
    /// Set when this server terminates TLS on it (`--tls-cert`, `--tls-key`).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves every listener until `shutdown` resolves, then stops accepting and gives open connections `DRAIN` (10 s)
/// to finish.
pub async fn run(listeners: Vec<Listener>, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let (stop, stopped) = crate::shutdown::channel();
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
    stop.fire();
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
    mut stop: crate::shutdown::Shutdown,
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
            () = stop.signalled() => break,
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

/// The listener a request came through, and what the connection knows of itself.
#[derive(Debug, Clone, Copy)]
pub struct Door {
    /// The listener.
    pub via: Via,
    /// The browser is on HTTPS (our TLS, or Cloudflare's in front of the tunnel listener).
    pub secure: bool,
    /// This server terminates TLS on this listener.
    pub tls: bool,
    /// The address the client connected to.
    pub addr: Option<std::net::IpAddr>,
}

/// A JSON 431 for a request head past [`MAX_HEAD_BYTES`] or [`MAX_HEADERS`].
pub(super) fn oversized_head(headers: &HeaderMap) -> Option<Response<Body>> {
    let head_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if head_bytes > MAX_HEAD_BYTES {
        Some(error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request headers over {MAX_HEAD_BYTES} bytes"),
        ))
    } else if headers.len() > MAX_HEADERS {
        Some(error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("more than {MAX_HEADERS} request headers"),
        ))
    } else {
        None
    }
}
