//! Web Push from the daemon's side, with the fake claude and the mock push service (tests/common/push_mock.rs, in
//! this process, which checks the VAPID JWT and decrypts each message as a browser's push service would not):
//!
//! 1. turn end → push request at the mock: from the fake CLI printing its result line (`FAKE_CLAUDE_TIMING`, realtime
//!    ns) to the mock having accepted the push (polled every 0.2 ms), over 30 warm turns; p50 and p90 in ms;
//! 2. a turn's time (message sent → its `done` event read from its stream) with no subscription against 100 (the
//!    API caps a server at 20 browsers; the others are stored directly, as 100 browsers would be), 30 turns each,
//!    medians: each turn 200 ms after the previous one's pushes are delivered (the turn alone), then 30 back to back
//!    (sharing the two cores with the delivery of the turns before);
//! 3. CPU per send: serve's utime + stime over those 30 turns with 100 subscriptions, less the same with none,
//!    divided by the 3,000 pushes sent.
//!
//! `cargo build --release --bins --examples`, then `cargo bench --bench push`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::push_mock::PushMock;
use common::{Server, SseStream, wait_for};
use serde_json::json;

const ROUNDS: usize = 30;
const MANY: usize = 100;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn ticks_per_sec() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

fn percentile(ms: &mut [f64], p: f64) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() - 1) as f64 * p).round() as usize]
}

fn server(timing: &std::path::Path) -> Server {
    let server = Server::builder()
        .env("REMOTE_AGENT_PUSH_ALLOW_LOOPBACK", "1")
        .env("FAKE_CLAUDE_TIMING", timing.display().to_string())
        .start();
    server.create(json!({ "id": "bench" }));
    server
}

fn subscribe(server: &Server, mock: &PushMock) {
    let resp = server.authed(
        "POST",
        "/api/push/subscriptions",
        mock.subscription().to_string().as_bytes(),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
}

/// Sends a message and reads its stream to `done`; the time that took.
fn turn(server: &Server, text: &str) -> Duration {
    let started = Instant::now();
    let turn = server.send("bench", json!({ "message": text }));
    let mut events = SseStream::open(server, "GET", &format!("/api/turns/{turn}/events"), &[]);
    let done = loop {
        let e = events.next().expect("the turn's done event");
        if e.event == "done" {
            break e;
        }
    };
    let took = started.elapsed();
    assert_eq!(done.data["status"], "succeeded");
    took
}

/// The end stamps (realtime ns) of the turns the fake has finished.
fn ends(timing: &std::path::Path) -> Vec<u128> {
    std::fs::read_to_string(timing)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();

    // 1. Turn end → push at the mock.
    let mock = PushMock::start();
    let timing = dir.path().join("timing-1");
    let one = server(&timing);
    subscribe(&one, &mock);
    let mut latency = Vec::new();
    for i in 0..=ROUNDS {
        let before = mock.messages().len();
        one.send("bench", json!({ "message": format!("round {i}") }));
        let arrived = loop {
            if mock.messages().len() > before {
                break now_ns();
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let ended = wait_for("the fake's end stamp", 10, || ends(&timing).get(i).copied());
        // The first round starts the process; it is not counted.
        if i > 0 {
            latency.push(arrived.saturating_sub(ended) as f64 / 1e6);
        }
    }
    let p50 = percentile(&mut latency, 0.5);
    let p90 = percentile(&mut latency, 0.9);
    println!(
        "turn end → push request at the mock: p50 {p50:.2} ms, p90 {p90:.2} ms (n = {ROUNDS}; target: p50 under 50 ms)"
    );
    drop(one);

    // 2 and 3. A turn with no subscription, then with 100; serve's CPU over each series.
    let mock = PushMock::start();
    let timing = dir.path().join("timing-2");
    let mut many = server(&timing);
    turn(&many, "warm up");
    // Each turn once the previous one's pushes are delivered and settled (the turn alone), then back to back (its
    // pushes sent while the next turns run, on this machine's two cores shared with the mock and the fake).
    let series = |server: &Server, mock: &PushMock, per_turn: usize| {
        let pid = server.pid();
        let cpu = cpu_ticks(pid);
        let mut alone: Vec<f64> = (0..ROUNDS)
            .map(|i| {
                let before = mock.messages().len();
                let took = turn(server, &format!("turn {i}")).as_secs_f64() * 1e3;
                wait_for("the turn's pushes", 60, || {
                    (mock.messages().len() >= before + per_turn).then_some(())
                });
                // The sender's last bookkeeping (deleting the rows it delivered) done too.
                std::thread::sleep(Duration::from_millis(200));
                took
            })
            .collect();
        let cpu = (cpu_ticks(pid) - cpu) as f64 / ticks_per_sec();
        let before = mock.messages().len();
        let mut packed: Vec<f64> = (0..ROUNDS)
            .map(|i| turn(server, &format!("packed {i}")).as_secs_f64() * 1e3)
            .collect();
        wait_for("every push", 120, || {
            (mock.messages().len() >= before + per_turn * ROUNDS).then_some(())
        });
        (
            percentile(&mut alone, 0.5),
            percentile(&mut packed, 0.5),
            cpu,
        )
    };
    let (none_ms, none_packed, none_cpu) = series(&many, &mock, 0);
    // 100 browsers: stored while serve is stopped, as the API would store them (it allows 20 per server).
    many.stop(15);
    {
        let db = rusqlite::Connection::open(many.path("data").join("remote-agent.db")).unwrap();
        for _ in 0..MANY {
            let sub = mock.subscription();
            db.execute(
                "INSERT INTO push_subscriptions (id, endpoint, p256dh, auth, hide_content, session_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, 0, NULL, unixepoch())",
                rusqlite::params![
                    uuid::Uuid::new_v4().to_string(),
                    sub["endpoint"].as_str().unwrap(),
                    sub["keys"]["p256dh"].as_str().unwrap(),
                    sub["keys"]["auth"].as_str().unwrap(),
                ],
            )
            .unwrap();
        }
    }
    many.restart();
    turn(&many, "warm up");
    wait_for("the warm-up's pushes", 60, || {
        (mock.messages().len() >= MANY).then_some(())
    });
    let (many_ms, many_packed, many_cpu) = series(&many, &mock, MANY);
    println!(
        "a turn's time, median of {ROUNDS}: {none_ms:.1} ms with no subscription, {many_ms:.1} ms with {MANY} \
         ({:+.1} %); back to back, while the pushes of the turns before are sent: {none_packed:.1} against \
         {many_packed:.1} ms",
        (many_ms / none_ms - 1.0) * 100.0
    );
    let sends = (MANY * ROUNDS) as f64;
    println!(
        "CPU per send: {:.0} µs (serve's CPU over {ROUNDS} turns: {:.2} s with {MANY} subscriptions, {:.2} s with \
         none; {} pushes)",
        ((many_cpu - none_cpu) / sends * 1e6).max(0.0),
        many_cpu,
        none_cpu,
        sends
    );
}
