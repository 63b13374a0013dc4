//! Streaming figures: how long a delta takes from the child to an SSE subscriber (one subscriber, and 200 on
//! one turn), events per second through one turn, memory per idle subscriber, and with the real CLI against the
//! mock Messages API the time from `POST …/messages` to the first `text_delta`.
//!
//! Uses the release binary and the fake (`cargo build --release --examples`; benches/run.sh does both). The
//! fake's `[[paced:N:MS]]` mode stamps each delta with the wall-clock time it printed it.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Server, SseStream};
use serde_json::json;

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
        "{name}: n {}  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        v.len(),
        pct(&v, 50.0),
        pct(&v, 90.0),
        pct(&v, 99.0),
        v[v.len() - 1]
    );
}

/// Reads a stream to its end, returning for each paced delta how long it took to arrive (ms).
fn delta_latencies(stream: &mut SseStream) -> Vec<f64> {
    let mut out = Vec::new();
    while let Some(e) = stream.next() {
        if e.event == "text_delta" {
            let received = now_ns();
            let stamp: u128 = e.data["text"].as_str().unwrap().trim().parse().unwrap();
            out.push((received.saturating_sub(stamp)) as f64 / 1e6);
        }
    }
    out
}

fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let server = Server::start();
    server.create(json!({ "id": "b" }));

    // 1. One subscriber, 500 deltas 2 ms apart.
    let id = server.send("b", json!({ "message": "[[paced:500:2]]" }));
    let mut s = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    summary("delta -> 1 subscriber", delta_latencies(&mut s));

    // 2. 200 subscribers on one turn, 100 deltas 10 ms apart.
    let id = server.send("b", json!({ "message": "[[slow:0.5]] [[paced:100:10]]" }));
    let streams: Vec<SseStream> = (0..200)
        .map(|_| SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]))
        .collect();
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut s| std::thread::spawn(move || delta_latencies(&mut s)))
        .collect();
    let all: Vec<Vec<f64>> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    assert!(
        all.iter().all(|v| v.len() == 100),
        "a subscriber missed deltas"
    );
    summary("delta -> 200 subscribers", all.concat());

    // 3. Events per second through one turn with one subscriber.
    let n = 50_000;
    let started = Instant::now();
    let id = server.send("b", json!({ "message": format!("[[deltas:{n}]]") }));
    let mut s = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    let events = s.rest();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "one turn, {} events (post to done, one subscriber): {:.2} s, {:.0} events/s",
        events.len(),
        secs,
        events.len() as f64 / secs
    );

    // 4. Memory per idle subscriber: 4 silent turns, 200 subscribers each.
    let pid = server.pid();
    let ids: Vec<String> = (0..4)
        .map(|i| {
            server.create(json!({ "id": format!("idle{i}") }));
            server.send(&format!("idle{i}"), json!({ "message": "[[slow:120]]" }))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kb(pid);
    let mut idle = Vec::new();
    for id in &ids {
        for _ in 0..200 {
            let mut s = SseStream::open(
                &server,
                "GET",
                &format!("/api/turns/{id}/events?after=2"),
                &[],
            );
            s.next();
            idle.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kb(pid);
    println!(
        "idle subscribers: {} open, RSS {} kB -> {} kB, {:.1} kB each",
        idle.len(),
        before,
        after,
        (after - before) as f64 / idle.len() as f64
    );
    drop(idle);
    for id in &ids {
        server.authed("POST", &format!("/api/turns/{id}/cancel"), b"");
    }

    // 5. The real CLI, cold (no process kept warm, `--max-warm=0`: each message starts the CLI, as a first message
    // or one after the idle timeout does): POST to the first text_delta; and, interleaved with it so that neither
    // gets a warmer machine, the same CLI run directly with the arguments the server gives it (spawn to the first
    // text_delta on its stdout), which the first figure cannot be below. benches/warm_turn.rs measures the warm path.
    let Some(claude) = std::env::var_os("REMOTE_AGENT_REAL_CLAUDE") else {
        println!("real CLI: skipped (set REMOTE_AGENT_REAL_CLAUDE)");
        return;
    };
    let mock = common::mock_api::MockApi::start();
    let real = Server::builder()
        .claude(&claude)
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "bench-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .arg("--max-warm=0")
        .start();
    real.create(json!({ "id": "r" }));
    let home = tempfile::tempdir().unwrap();
    let mut session = None;
    // A first direct run makes the session the others resume, as the server's first turn does.
    direct_run(&claude, &mock, home.path(), &mut session, 0);
    let (mut firsts, mut direct) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let started = Instant::now();
        let id = real.send("r", json!({ "message": format!("hello {i}") }));
        let mut s = SseStream::open(&real, "POST", &format!("/api/turns/{id}/events"), &[]);
        let mut first = None;
        while let Some(e) = s.next() {
            if e.event == "text_delta" && first.is_none() {
                first = Some(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        firsts.push(first.expect("a text_delta"));
        direct.push(direct_run(&claude, &mock, home.path(), &mut session, i + 1));
    }
    summary(
        "real CLI, cold: POST to first text_delta (10 turns, resumed session)",
        firsts,
    );
    summary(
        "real CLI run directly: spawn to first text_delta (10 runs, resumed session)",
        direct,
    );
}

/// Runs the CLI as the server would start a cold one (its arguments, the message as a JSON line on stdin, then
/// stdin closed) and returns the ms from spawn to the first
/// `text_delta` line; remembers the session it made.
fn direct_run(
    claude: &std::ffi::OsStr,
    mock: &common::mock_api::MockApi,
    home: &std::path::Path,
    session: &mut Option<String>,
    i: usize,
) -> f64 {
    use std::io::{BufRead, Write};
    let spec = remote_agent::claude::Spec {
        bin: claude.to_string_lossy().into_owned(),
        cwd: home.to_path_buf(),
        resume: session.clone(),
        options: Vec::new(),
        marker: remote_agent::claude::Marker::new(&format!("direct-{i}"), home),
    };
    let started = Instant::now();
    let mut child = std::process::Command::new(claude)
        .args(remote_agent::claude::args(&spec))
        .current_dir(home)
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "bench-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Dropped at the end of the statement: the prompt is written and stdin closed.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(remote_agent::claude::control::user_line(&format!("hello {i}")).as_bytes())
        .unwrap();
    let mut first = None;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if first.is_none() && line.contains("\"text_delta\"") {
            first = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        if session.is_none()
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(id) = v["session_id"].as_str()
        {
            *session = Some(id.to_string());
        }
    }
    child.wait().unwrap();
    first.expect("a text_delta")
}
