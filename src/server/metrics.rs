//! `GET /metrics`: Prometheus text. Requests by route and status are counted here; turns, subscribers and the
//! supervisor's children and tunnel are read from where they already live (the store, the turn manager, `up`'s
//! state file).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use hyper::{Response, StatusCode};

use super::App;
use super::assets::ASSETS;
use super::respond::{Body, full, with_type};
use crate::turns::DURATION_BUCKETS;

/// Requests counted by (method, route, status); every label comes from a short fixed list, so a client sending
/// made-up methods or paths cannot grow the table.
#[derive(Default)]
pub struct Requests(Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>);

impl Requests {
    /// Counts one answered request.
    pub fn count(&self, method: &hyper::Method, route: &'static str, status: u16) {
        use hyper::Method as M;
        let method = match *method {
            M::GET => "GET",
            M::POST => "POST",
            M::PUT => "PUT",
            M::PATCH => "PATCH",
            M::DELETE => "DELETE",
            M::HEAD => "HEAD",
            M::OPTIONS => "OPTIONS",
            _ => "OTHER",
        };
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((method, route, status)).or_default() += 1;
    }
}

/// The route a path belongs to, with its ids left out, so the label set stays small.
pub fn route_label(segments: &[&str]) -> &'static str {
    match segments {
        [""] => "/",
        ["health"] => "/health",
        ["metrics"] => "/metrics",
        ["pair", _] => "/pair/{token}",
        ["api", "chat"] => "/api/chat",
        ["api", "reset"] => "/api/reset",
        ["api", "sessions"] => "/api/sessions",
        ["api", "claude-sessions"] => "/api/claude-sessions",
        ["api", "projects"] => "/api/projects",
        ["api", "projects", "browse"] => "/api/projects/browse",
        ["api", "status"] => "/api/status",
        ["api", "config"] => "/api/config",
        ["api", "sessions", _, "chat"] => "/api/sessions/{id}/chat",
        ["api", "sessions", _, "tasks", _] => "/api/sessions/{id}/tasks/{id}",
        ["api", "login"] => "/api/login",
        ["api", "logout"] => "/api/logout",
        ["api", "session"] => "/api/session",
        ["api", "conversations"] => "/api/conversations",
        ["api", "conversations", _] => "/api/conversations/{id}",
        ["api", "conversations", _, "messages"] => "/api/conversations/{id}/messages",
        ["api", "turns", _] => "/api/turns/{id}",
        ["api", "turns", _, "events"] => "/api/turns/{id}/events",
        ["api", "turns", _, "events.json"] => "/api/turns/{id}/events.json",
        ["api", "turns", _, "cancel"] => "/api/turns/{id}/cancel",
        ["api", "requests"] => "/api/requests",
        ["api", "requests", _] => "/api/requests/{id}",
        ["api", "push", "key"] => "/api/push/key",
        ["api", "push", "subscriptions"] => "/api/push/subscriptions",
        ["api", "push", "test"] => "/api/push/test",
        ["api", "presence"] => "/api/presence",
        [name] if ASSETS.iter().any(|(n, _, _)| n == name) => "/{asset}",
        _ => "other",
    }
}

pub(super) fn metrics(app: &App) -> Response<Body> {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# HELP remote_agent_requests_total HTTP requests answered, by route and status."
    );
    let _ = writeln!(w, "# TYPE remote_agent_requests_total counter");
    for ((method, route, status), n) in app
        .requests
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        let _ = writeln!(
            w,
            "remote_agent_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    let ended = app.turns.ended();
    let _ = writeln!(
        w,
        "# HELP remote_agent_turns_total Turns that ended since the server started, by how they ended."
    );
    let _ = writeln!(w, "# TYPE remote_agent_turns_total counter");
    for (status, n) in &ended.by_status {
        let _ = writeln!(w, "remote_agent_turns_total{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        w,
        "# HELP remote_agent_turn_duration_seconds How long the turns that ran took, since the server started."
    );
    let _ = writeln!(w, "# TYPE remote_agent_turn_duration_seconds histogram");
    for (le, n) in DURATION_BUCKETS.iter().zip(ended.buckets) {
        let _ = writeln!(
            w,
            "remote_agent_turn_duration_seconds_bucket{{le=\"{le}\"}} {n}"
        );
    }
    let _ = writeln!(
        w,
        "remote_agent_turn_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        ended.ran
    );
    let _ = writeln!(
        w,
        "remote_agent_turn_duration_seconds_sum {}",
        ended.seconds
    );
    let _ = writeln!(w, "remote_agent_turn_duration_seconds_count {}", ended.ran);
    let (running, queued) = app.turns.counts();
    let gauges = [
        (
            "remote_agent_turns_running",
            "Turns running now.",
            running as f64,
        ),
        (
            "remote_agent_turns_queued",
            "Turns waiting for their conversation or a slot.",
            queued as f64,
        ),
        (
            "remote_agent_sse_subscribers",
            "Open event-stream readers.",
            app.turns.subscribers() as f64,
        ),
        (
            "remote_agent_uptime_seconds",
            "Seconds since this server started.",
            app.started.elapsed().as_secs_f64(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            w,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    if let Some(state) = crate::state::read_live(&app.settings.get().state_dir) {
        let _ = writeln!(
            w,
            "# HELP remote_agent_child_restarts_total Restarts of up's children."
        );
        let _ = writeln!(w, "# TYPE remote_agent_child_restarts_total counter");
        for (name, child) in state.children.iter() {
            let n = child.restarts;
            let _ = writeln!(
                w,
                "remote_agent_child_restarts_total{{child=\"{name}\"}} {n}"
            );
        }
        let ready = u8::from(state.tunnel.ready);
        let _ = writeln!(
            w,
            "# HELP remote_agent_tunnel_ready 1 while the tunnel holds a connection to the Cloudflare edge.\n\
             # TYPE remote_agent_tunnel_ready gauge\nremote_agent_tunnel_ready {ready}"
        );
    }
    let mut resp = Response::new(full(out));
    *resp.status_mut() = StatusCode::OK;
    with_type(resp, "text/plain; version=0.0.4; charset=utf-8")
}
