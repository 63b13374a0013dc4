//! The daemon's warm path with the real CLI: the release `remote-agent serve` runs a conversation on one live
//! Claude Code process (`REMOTE_AGENT_REAL_CLAUDE`, else `claude` on PATH) against the instant mock Messages API
//! (tests/common/mock_api.rs).
//!
//! 1. One cold turn, then 30 warm turns on the same process: from just before `POST …/messages` to the first
//!    `text_delta` at an SSE subscriber (opened once the POST answers, as the web app does), p50 and p90, next to
//!    the cold turn's figure.
//! 2. Requests, on a second server whose `claude` is this executable acting as a thin relay in front of the real
//!    CLI (it stamps the CLI's `can_use_tool` lines as it reads them from the CLI's stdout, and our answers as it
//!    reads them from its stdin, before passing them on): 10 turns of `RUN_BASH: touch …` in `default` mode, each
//!    allowed; p50 of the CLI's request line → the `request` event at a subscriber, the answer's POST → the answer
//!    line reaching the CLI's stdin, and the answer's POST → the `tool_result` event at the subscriber (which
//!    includes the CLI running the tool).
//!
//! Needs the release examples (the fixtures look for the fake): `cargo build --release --examples`, then
//! `REMOTE_AGENT_REAL_CLAUDE=… cargo bench --bench warm_turn`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::mock_api::MockApi;
use common::{Server, Sse, SseStream};
use serde_json::{Value, json};

/// Set (to the stamp file) when this executable runs as the relay in front of the CLI.
const RELAY_LOG: &str = "WARM_TURN_RELAY_LOG";
/// The real CLI the relay runs.
const RELAY_CLAUDE: &str = "WARM_TURN_RELAY_CLAUDE";

const WARM_TURNS: usize = 30;
const REQUESTS: usize = 10;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "{name}: n {}  p50 {:.2} ms  p90 {:.2} ms  min {:.2} ms  max {:.2} ms",
        v.len(),
        pct(&v, 50.0),
        pct(&v, 90.0),
        v[0],
        v[v.len() - 1]
    );
}

fn main() {
    if let Some(log) = std::env::var_os(RELAY_LOG) {
        relay(Path::new(&log));
        return;
    }
    let Some(claude) = common::real_claude("warm_turn") else {
        return;
    };
    let version = Command::new(&claude).arg("--version").output().unwrap();
    println!("claude {}", String::from_utf8_lossy(&version.stdout).trim());
    let mock = MockApi::start();
    let start = |claude: &Path, envs: &[(&str, String)]| {
        let mut b = Server::builder()
            .claude(claude)
            .env("ANTHROPIC_BASE_URL", mock.base_url())
            .env("ANTHROPIC_API_KEY", "bench-key")
            .env("CLAUDE_CODE_MAX_RETRIES", "0");
        for (k, v) in envs {
            b = b.env(k, v);
        }
        b.start()
    };

    // 1. Cold, then warm: POST to the first text_delta.
    let server = start(&claude, &[]);
    server.create(json!({ "id": "w" }));
    let cold = first_delta(&server, "w", "hello cold");
    let warm: Vec<f64> = (0..WARM_TURNS)
        .map(|i| first_delta(&server, "w", &format!("hello {i}")))
        .collect();
    println!("cold turn (spawn included): POST to first text_delta {cold:.2} ms");
    summary(
        &format!("warm turns: POST to first text_delta ({WARM_TURNS} turns, one process)"),
        warm,
    );
    drop(server);

    // 2. Requests, through the relay.
    let stamps = tempfile::NamedTempFile::new().unwrap();
    let relay_bin = std::env::current_exe().unwrap();
    let server = start(
        &relay_bin,
        &[
            (RELAY_LOG, stamps.path().display().to_string()),
            (RELAY_CLAUDE, claude.display().to_string()),
        ],
    );
    server.create(json!({ "id": "r", "permission_mode": "default" }));
    // A first turn starts the process (cold), so every sample below is on a warm one.
    first_delta(&server, "r", "hello");
    let (mut to_event, mut to_stdin, mut to_result) = (Vec::new(), Vec::new(), Vec::new());
    let mut late = 0;
    for i in 0..REQUESTS {
        let turn = server.send(
            "r",
            json!({ "message": format!("RUN_BASH: touch made-{i}.txt") }),
        );
        let mut s = SseStream::open(&server, "POST", &format!("/api/turns/{turn}/events"), &[]);
        let subscribed = now_ns();
        let request = until(&mut s, "request");
        let request_at = now_ns();
        let id = request.data["id"].as_str().unwrap().to_string();
        let asked = stamp(stamps.path(), "req", i);
        if asked < subscribed {
            // The subscriber came after the CLI asked: the event was a replay, not a live delivery.
            late += 1;
        } else {
            to_event.push((request_at - asked) as f64 / 1e6);
        }
        let posted = now_ns();
        let answer = server.authed(
            "POST",
            &format!("/api/requests/{id}"),
            br#"{"decision":"allow"}"#,
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        until(&mut s, "tool_result");
        let result_at = now_ns();
        to_result.push((result_at - posted) as f64 / 1e6);
        to_stdin.push((stamp(stamps.path(), "resp", i) - posted) as f64 / 1e6);
        until(&mut s, "done");
        assert!(server.path(&format!("project/made-{i}.txt")).exists());
    }
    summary(
        "CLI's request line -> request event at a subscriber",
        to_event,
    );
    if late > 0 {
        println!("  ({late} sample(s) left out: the subscriber connected after the CLI asked)");
    }
    summary("answer POST -> answer line on the CLI's stdin", to_stdin);
    summary(
        "answer POST -> tool_result event at the subscriber (the CLI runs the tool)",
        to_result,
    );
}

/// One turn: ms from just before its POST to the first `text_delta` at a subscriber; reads it to its end.
fn first_delta(server: &Server, conv: &str, message: &str) -> f64 {
    let started = Instant::now();
    let turn = server.send(conv, json!({ "message": message }));
    let mut s = SseStream::open(server, "POST", &format!("/api/turns/{turn}/events"), &[]);
    until(&mut s, "text_delta");
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let done = until(&mut s, "done");
    assert_eq!(done.data["status"], "succeeded", "{}", server.log());
    ms
}

/// Reads events until one of this kind; panics if the turn ends first (or nothing comes within 60 s).
fn until(s: &mut SseStream, kind: &str) -> Sse {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "no {kind} event within 60 s");
        let Some(e) = s.next_within(1.0) else {
            assert!(!s.ended, "the stream ended before a {kind} event");
            continue;
        };
        if e.event == kind {
            return e;
        }
        assert_ne!(
            e.event, "done",
            "the turn ended before a {kind} event: {e:?}"
        );
    }
}

/// The relay's `n`-th stamp of this kind (ns since the epoch), waiting for it to be written.
fn stamp(path: &Path, kind: &str, n: usize) -> u128 {
    common::wait_for("the relay's stamp", 10, || {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .filter_map(|l| l.strip_prefix(kind)?.strip_prefix(' '))
            .nth(n)?
            .parse()
            .ok()
    })
}

/// The relay: runs the real CLI with our arguments, passes stdin and stdout through line by line, and stamps
/// each `can_use_tool` request it reads from the CLI (`req <ns>`) and each `control_response` it reads from the
/// daemon (`resp <ns>`), the stamp taken as the line is read, before it is passed on.
fn relay(log: &Path) {
    let claude = std::env::var_os(RELAY_CLAUDE).expect("WARM_TURN_RELAY_CLAUDE");
    let mut child = Command::new(claude)
        .args(std::env::args_os().skip(1))
        .env_remove(RELAY_LOG)
        .env_remove(RELAY_CLAUDE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the real claude");
    let stamps = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap(),
    ));
    let note = {
        let stamps = stamps.clone();
        move |kind: &str, at: u128| {
            let _ = writeln!(stamps.lock().unwrap(), "{kind} {at}");
        }
    };
    let mut to_child = child.stdin.take().unwrap();
    let from_child = child.stdout.take().unwrap();
    let note_in = note.clone();
    std::thread::spawn(move || {
        let mut input = BufReader::new(std::io::stdin());
        let mut line = Vec::new();
        loop {
            line.clear();
            match input.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let at = now_ns();
            if kind_of(&line) == "control_response" {
                note_in("resp", at);
            }
            if to_child.write_all(&line).is_err() || to_child.flush().is_err() {
                break;
            }
        }
        // Dropping it closes the CLI's stdin, as the daemon closing ours asks.
    });
    let out = std::thread::spawn(move || {
        let mut output = BufReader::new(from_child);
        let stdout = std::io::stdout();
        let mut line = Vec::new();
        loop {
            line.clear();
            match output.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let at = now_ns();
            let v: Value = serde_json::from_slice(&line).unwrap_or(Value::Null);
            if v["type"] == "control_request" && v["request"]["subtype"] == "can_use_tool" {
                note("req", at);
            }
            let mut stdout = stdout.lock();
            if stdout.write_all(&line).is_err() || stdout.flush().is_err() {
                break;
            }
        }
    });
    let status = child.wait().unwrap();
    let _ = out.join();
    std::process::exit(status.code().unwrap_or(1));
}

/// A JSON line's `type`.
fn kind_of(line: &[u8]) -> String {
    serde_json::from_slice::<Value>(line)
        .ok()
        .and_then(|v| v["type"].as_str().map(String::from))
        .unwrap_or_default()
}
