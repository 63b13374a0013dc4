//! How long an approval takes to cross the daemon, both ways, with our fake CLI (which stamps the moments on its
//! side, `FAKE_CLAUDE_STAMPS`): from the CLI printing its permission request to the `request` event reaching a
//! subscriber of the turn's stream, and from the answer's POST being sent to the answer line arriving on the CLI's
//! stdin. 30 requests on one warm process; p50 and p90 in milliseconds.
//!
//! `cargo build --release --bins --examples`, then `cargo bench --bench approvals`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Server, SseStream};
use serde_json::json;

const ROUNDS: usize = 30;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The stamps of `what` the fake wrote so far.
fn stamps(path: &std::path::Path, what: &str) -> Vec<u128> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix(what)?.trim().parse().ok())
        .collect()
}

fn summary(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    println!(
        "{what}: p50 {:.2} ms, p90 {:.2} ms (n = {})",
        at(0.5),
        at(0.9),
        ms.len()
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let stamp_file = dir.path().join("stamps");
    let server = Server::builder()
        .env("FAKE_CLAUDE_STAMPS", stamp_file.display().to_string())
        .start();
    server.create(json!({ "id": "bench" }));
    let (mut to_event, mut to_stdin) = (Vec::new(), Vec::new());
    for i in 0..=ROUNDS {
        // The pause before the request leaves time to subscribe, so the event is seen live, not replayed.
        let turn = server.send(
            "bench",
            json!({ "message": format!("[[slow:0.2]][[bash:touch f{i}.txt]]") }),
        );
        let mut s = SseStream::open(&server, "GET", &format!("/api/turns/{turn}/events"), &[]);
        let (request, seen) = loop {
            let e = s.next().expect("a request");
            if e.event == "request" {
                break (e.data, now_ns());
            }
        };
        let asked = *stamps(&stamp_file, "asked ").last().unwrap();
        let id = request["id"].as_str().unwrap();
        let sent = now_ns();
        let resp = server.authed(
            "POST",
            &format!("/api/requests/{id}"),
            br#"{"decision":"allow"}"#,
        );
        assert_eq!(resp.status, 200);
        let answered = common::wait_for("the answer on the CLI's stdin", 10, || {
            stamps(&stamp_file, "answered ").get(i).copied()
        });
        assert_eq!(s.rest().last().unwrap().data["status"], "succeeded");
        // The first round starts the process; it is not counted.
        if i > 0 {
            to_event.push((seen - asked) as f64 / 1e6);
            to_stdin.push((answered - sent) as f64 / 1e6);
        }
    }
    summary(
        "CLI prints its permission request → `request` event at a subscriber",
        to_event,
    );
    summary(
        "answer POST sent → answer line on the CLI's stdin",
        to_stdin,
    );
}
