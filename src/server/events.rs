//! A turn's events as a reader sees them: server-sent events (on GET and POST, resumable from a cursor, kept alive
//! through proxies) and the same events as a JSON long poll.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::App;
use super::respond::{Body, ChannelBody, error, full, internal, is_uuid, json, query_param};
use crate::store::EventKind;
use crate::turns::{SubscribeError, Subscription};

/// Longest wait a long poll may ask for.
const MAX_POLL_WAIT: u64 = 30;

/// The cursor a reader resumes from: the later of `?after=N` and the `Last-Event-ID` header, else 0. A browser's
/// EventSource reconnects to the same `?after=` URL and adds the header with what it has seen since, so the header
/// must win when it is further on.
fn cursor(req: &Request<Incoming>) -> Result<u64, Response<Body>> {
    let header = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string());
    let mut cursor = 0;
    for raw in [query_param(req.uri().query(), "after"), header]
        .into_iter()
        .flatten()
    {
        let n: u64 = raw.parse().map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "after / Last-Event-ID must be an event id (a whole number)",
            )
        })?;
        cursor = cursor.max(n);
    }
    Ok(cursor)
}

fn subscribe(app: &App, req: &Request<Incoming>, id: &str) -> Result<Subscription, Response<Body>> {
    let after = cursor(req)?;
    if !is_uuid(id) {
        return Err(error(StatusCode::NOT_FOUND, "no such turn"));
    }
    app.turns.subscribe(id, after).map_err(|e| match e {
        SubscribeError::NotFound => error(StatusCode::NOT_FOUND, "no such turn"),
        SubscribeError::TurnFull | SubscribeError::Full => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        SubscribeError::Store(e) => internal(e),
    })
}

/// `GET|POST /api/turns/{id}/events`: server-sent events, resumable, with the headers that keep Cloudflare and
/// other proxies from buffering, a first event at once and a `keepalive` event after each quiet spell.
pub(super) fn events_stream(app: &App, req: &Request<Incoming>, id: &str) -> Response<Body> {
    let sub = match subscribe(app, req, id) {
        Ok(sub) => sub,
        Err(resp) => return resp,
    };
    if sub.past_end() {
        // Stops EventSource's reconnects.
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return resp;
    }
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(pump(sub, tx, app.settings.get().sse_keepalive));
    let mut resp = Response::new(ChannelBody(rx).boxed());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// Moves a subscription's events into an SSE response until the stream ends or the client goes away.
async fn pump(mut sub: Subscription, tx: mpsc::Sender<Bytes>, keepalive: Duration) {
    let mut wait = Duration::ZERO;
    loop {
        let batch = tokio::select! {
            batch = sub.next(wait) => batch,
            () = tx.closed() => return,
        };
        wait = keepalive;
        let mut chunk = String::new();
        if batch.events.is_empty() && !batch.finished {
            // No `id:`: a keepalive is not part of the turn's stream, so it never moves a resume cursor.
            chunk.push_str(&format!("event: {}\ndata: {{}}\n\n", EventKind::Keepalive));
        }
        for e in &batch.events {
            chunk.push_str(&format!(
                "id: {}\nevent: {}\ndata: {}\n\n",
                e.seq, e.kind, e.data
            ));
        }
        if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
            return;
        }
        if batch.finished {
            return;
        }
    }
}

/// `GET /api/turns/{id}/events.json?after=N&wait=S`: the same events as JSON, for paths that buffer streams.
pub(super) async fn events_poll(app: &App, req: &Request<Incoming>, id: &str) -> Response<Body> {
    let wait = match query_param(req.uri().query(), "wait").map(|w| w.parse::<u64>()) {
        None => 25,
        Some(Ok(w)) if w <= MAX_POLL_WAIT => w,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("wait must be a whole number of seconds up to {MAX_POLL_WAIT}"),
            );
        }
    };
    let mut sub = match subscribe(app, req, id) {
        Ok(sub) => sub,
        Err(resp) => return resp,
    };
    let batch = if sub.past_end() {
        crate::turns::Batch {
            events: Vec::new(),
            finished: true,
        }
    } else {
        sub.next(Duration::from_secs(wait)).await
    };
    let events: Vec<Value> = batch
        .events
        .iter()
        .map(|e| {
            json!({
                "id": e.seq,
                "event": e.kind,
                "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({"events": events, "done": batch.finished}),
    )
}
