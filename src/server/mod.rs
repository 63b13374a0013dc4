//! The HTTP server: the state every handler shares ([`App`]), how one request is handled ([`handle`]: the
//! checks, then the one `match` that routes it, then the security headers and the log line), and the modules it
//! is made of: `listen` (accept loops, caps, TLS), `gate` (host, credentials, throttle, origin), `respond`
//! (bodies, JSON, errors), and the routes: `prototype`, `tasks` (the prototype's asynchronous API),
//! `conversations`, `events` (a turn's event streams), `requests` (approvals and questions), `claude_sessions` (the
//! CLI's own sessions), `changes` (what a turn changed), `projects` (the project picker), `signin`, `metrics`, `assets`.

// Handlers return early with the response to send (`Result<T, Response<Body>>`); boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;

mod assets;
mod changes;
mod claude_sessions;
mod conversations;
mod desk;
mod events;
mod export;
mod gate;
mod listen;
mod messages;
mod metrics;
mod projects;
mod prototype;
mod push;
mod requests;
mod respond;
mod signin;
mod tasks;
mod upload;

pub use self::listen::{
    Door, Listener, MAX_CONNECTIONS, MAX_LOCAL_CONNECTIONS, Via, run, tls_acceptor,
};
pub use self::respond::{
    Body, MAX_BODY, error, full, is_uuid, json, query_param, valid_conversation_id,
};
pub use self::tasks::Tasks;

use self::assets::asset;
use self::respond::{decode_segment, method_not_allowed, read_json, with_type};
use crate::auth;
use crate::config::Shared;
use crate::store::Store;
use crate::turns::Turns;

/// The header that marks the supervisor's own `/health` probe, logged at debug level only.
pub const PROBE_HEADER: &str = "x-remote-agent-probe";

/// What every handler shares.
pub struct App {
    /// The settings, swapped whole when the config file changes or SIGHUP asks.
    pub settings: Arc<Shared>,
    /// The database.
    pub store: Arc<Store>,
    /// The turn manager: queues, running turns and their readers.
    pub turns: Turns,
    /// When serving began (`uptime_secs`, the uptime gauge).
    pub started: Instant,
    /// The brute-force defences and the request rate, per client.
    pub throttle: auth::Throttle,
    /// Basic headers verified lately, so that argon2 does not run on every request.
    pub basic_cache: auth::BasicCache,
    /// Requests answered, by route and status, for `/metrics`.
    pub requests: metrics::Requests,
    /// The Web Push sender.
    pub push: crate::push::Push,
    /// The prototype's asynchronous tasks: which turn was asked of which session.
    pub tasks: Tasks,
    /// The CLI's own session files, summarized and cached.
    pub history: Arc<crate::history::History>,
}

/// Who is asking and through which door.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// The client's address (see `gate::client_ip`).
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
    /// HTTP Basic credentials, checked against the configured password.
    Basic,
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
    let client = gate::client_ip(&req, peer, via);
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
    let mut resp = if let Some(resp) = listen::oversized_head(req.headers()) {
        resp
    } else if path != "/health"
        && let Err(host) = gate::host_allowed(app, &req, door)
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
    respond::harden(resp.headers_mut(), path.starts_with("/api/"), secure);
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
        (&Method::POST, ["api", "login"]) => {
            return match signin::login_allowed(app, req.headers(), ctx) {
                Ok(()) => with_body(req, |b| signin::login(app, b, ctx)).await,
                Err(resp) => resp,
            };
        }
        (&Method::GET, ["api", "session"]) => return signin::session(app, &req),
        (&Method::GET, ["pair", token]) => return signin::pair_page(app, token),
        (&Method::POST, ["pair", token]) => return signin::pair(app, &req, token, ctx),
        (_, [""] | ["health"] | ["pair", _]) => return method_not_allowed("GET"),
        (_, ["api", "login"]) => return method_not_allowed("POST"),
        (_, ["api", "session"]) => return method_not_allowed("GET"),
        _ => {}
    }
    let signed = match gate::admit(app, req.headers(), &method, ctx).await {
        Ok(signed) => signed,
        Err(resp) => return resp,
    };
    use Method as M;
    match (&method, segments) {
        (&M::POST, ["api", "chat"]) => with_body(req, |b| prototype::chat(app, b)).await,
        (&M::POST, ["api", "reset"]) => match prototype::ResetRequest::read(req).await {
            Ok(b) => prototype::reset(app, b).await,
            Err(resp) => resp,
        },
        (&M::GET, ["api", "sessions"]) => prototype::sessions(app),
        (&M::POST, ["api", "sessions", session, "chat"]) => {
            with_body(req, |b| async { tasks::chat(app, session, b) }).await
        }
        (&M::GET, ["api", "sessions", session, "tasks", task]) => tasks::get(app, session, task),
        (&M::DELETE, ["api", "sessions", session, "tasks", task]) => {
            tasks::delete(app, session, task)
        }
        (&M::GET, ["api", "config"]) => tasks::config(app),
        (_, ["api", "sessions", _, "chat"]) => method_not_allowed("POST"),
        (_, ["api", "sessions", _, "tasks", _]) => method_not_allowed("GET, DELETE"),
        (&M::GET, ["api", "claude-sessions"]) => claude_sessions::list(app, &req).await,
        (&M::GET, ["api", "projects"]) => projects::list(app, &req).await,
        (&M::GET, ["api", "projects", "browse"]) => projects::browse(app, &req).await,
        (&M::POST, ["api", "claude-sessions", id, "adopt"]) => {
            claude_sessions::adopt(app, id).await
        }
        (_, ["api", "claude-sessions", _, "adopt"]) => method_not_allowed("POST"),
        (&M::GET, ["api", "conversations", id, "history"]) => {
            claude_sessions::history(app, &req, id).await
        }
        (_, ["api", "conversations", _, "history"]) => method_not_allowed("GET"),
        (&M::GET, ["api", "status"]) => conversations::status(app),
        (&M::GET, ["metrics"]) => metrics::metrics(app),
        (&M::POST, ["api", "logout"]) => signin::logout(app, &signed, ctx),
        (&M::GET, ["api", "conversations"]) => conversations::list_conversations(app),
        (&M::POST, ["api", "conversations"]) => {
            with_body(req, |b| conversations::create_conversation(app, b)).await
        }
        (&M::GET, ["api", "conversations", id]) => conversations::get_conversation(app, &req, id),
        // An unknown conversation is a 404 before its body is read.
        (&M::PATCH, ["api", "conversations", id]) => {
            match conversations::find_conversation(app, id) {
                Ok(c) => with_body(req, |b| conversations::patch_conversation(app, &c, b)).await,
                Err(resp) => resp,
            }
        }
        (&M::DELETE, ["api", "conversations", id]) => {
            conversations::delete_conversation(app, id).await
        }
        (&M::POST, ["api", "conversations", id, "messages"]) => {
            match conversations::find_conversation(app, id) {
                Ok(c) => messages::post(app, &c, req).await,
                Err(resp) => resp,
            }
        }
        (&M::GET, ["api", "attachments", id]) => messages::get_attachment(app, id),
        (_, ["api", "attachments", _]) => method_not_allowed("GET"),
        (&M::GET, ["api", "conversations", id, "export"]) => export::export(app, &req, id),
        (&M::GET, ["api", "conversations", id, "desk"]) => desk::desk(app, id).await,
        (&M::GET, ["api", "turns", id]) => conversations::get_turn(app, id),
        (&M::GET, ["api", "turns", id, "changes"]) => {
            changes::list(app, changes::Of::Turn(id)).await
        }
        (&M::GET, ["api", "turns", id, "changes", path @ ..]) => {
            changes::file(app, changes::Of::Turn(id), path).await
        }
        (&M::GET, ["api", "conversations", id, "changes"]) => {
            changes::list(app, changes::Of::Conversation(id)).await
        }
        (&M::GET, ["api", "conversations", id, "changes", path @ ..]) => {
            changes::file(app, changes::Of::Conversation(id), path).await
        }
        (_, ["api", "turns" | "conversations", _, "changes", ..]) => method_not_allowed("GET"),
        (&M::GET | &M::POST, ["api", "turns", id, "events"]) => {
            events::events_stream(app, &req, id)
        }
        (&M::GET, ["api", "turns", id, "events.json"]) => events::events_poll(app, &req, id).await,
        (&M::POST, ["api", "turns", id, "cancel"]) => conversations::cancel_turn(app, id),
        (&M::GET, ["api", "push", "key"]) => push::key(app),
        (&M::POST, ["api", "push", "subscriptions"]) => {
            with_body(req, |b| async { push::subscribe(app, &signed, b) }).await
        }
        (&M::DELETE, ["api", "push", "subscriptions"]) => {
            with_body(req, |b| async { push::unsubscribe(app, b) }).await
        }
        (&M::POST, ["api", "push", "test"]) => {
            with_body(req, |b| async { push::test(app, b) }).await
        }
        (&M::POST, ["api", "presence"]) => {
            with_body(req, |b| async {
                push::presence(app, &signed, ctx.client, b)
            })
            .await
        }
        (_, ["api", "push", "key"]) => method_not_allowed("GET"),
        (_, ["api", "push", "subscriptions"]) => method_not_allowed("POST, DELETE"),
        (_, ["api", "push", "test"] | ["api", "presence"]) => method_not_allowed("POST"),
        (&M::GET, ["api", "requests"]) => requests::list(app),
        (&M::POST, ["api", "requests", id]) => {
            with_body(req, |b| requests::answer(app, id, b)).await
        }
        (_, ["api", "requests"]) => method_not_allowed("GET"),
        (_, ["api", "requests", _]) => method_not_allowed("POST"),
        (_, ["api", "chat" | "reset"] | ["api", "conversations", _, "messages"]) => {
            method_not_allowed("POST")
        }
        (_, ["api", "turns", _, "cancel"]) => method_not_allowed("POST"),
        (
            _,
            [
                "api",
                "sessions" | "status" | "config" | "claude-sessions" | "projects",
            ]
            | ["api", "projects", "browse"]
            | ["api", "turns", _]
            | ["api", "turns", _, "events.json"],
        ) => method_not_allowed("GET"),
        (_, ["api", "conversations"]) => method_not_allowed("GET, POST"),
        (_, ["api", "conversations", _]) => method_not_allowed("GET, PATCH, DELETE"),
        (_, ["api", "turns", _, "events"]) => method_not_allowed("GET, POST"),
        _ => error(StatusCode::NOT_FOUND, format!("no route for {path}")),
    }
}

/// Runs a handler on the request's JSON body, or answers what is wrong with the body.
async fn with_body<T: DeserializeOwned, F: Future<Output = Response<Body>>>(
    req: Request<Incoming>,
    handler: impl FnOnce(T) -> F,
) -> Response<Body> {
    match read_json(req).await {
        Ok(body) => handler(body).await,
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An [`App`] over a temporary directory and an in-memory store, for calling handlers and checks without a
    /// socket.
    pub(super) fn app(dir: &std::path::Path) -> App {
        std::fs::write(dir.join("config.toml"), "").unwrap();
        let vars = [
            ("REMOTE_AGENT_CONFIG", dir.join("config.toml")),
            ("REMOTE_AGENT_DATA_DIR", dir.join("data")),
            ("REMOTE_AGENT_STATE_DIR", dir.join("state")),
            ("CLAUDE_PROJECT_PATH", dir.to_path_buf()),
            ("AUTH_USERNAME", "me".into()),
            ("AUTH_PASSWORD", "a long password".into()),
        ];
        let env = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.display().to_string())
        };
        let settings = crate::config::Settings::resolve(&Default::default(), &env, dir).unwrap();
        let settings = Shared::new(settings);
        let store = Arc::new(Store::open_in_memory().unwrap());
        let push = crate::push::Push::start(store.clone(), settings.clone());
        App {
            push: push.clone(),
            turns: Turns::new(store.clone(), settings.clone(), push),
            settings,
            store,
            started: Instant::now(),
            throttle: Default::default(),
            basic_cache: Default::default(),
            requests: Default::default(),
            tasks: Default::default(),
            history: Default::default(),
        }
    }
}
