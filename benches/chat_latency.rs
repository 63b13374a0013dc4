//! What `POST /api/chat` adds on top of the child's own run time, with an instant fake `claude`.
//!
//! Starts the release `remote-agent serve` on 127.0.0.1:0 with a temp data dir and the fake (built by
//! `cargo build --release --examples`; benches/run.sh does both), sends sequential messages to one conversation
//! over a kept-alive connection, and subtracts from each request's round trip the fake's own run time (it records
//! when its `main` started and when it exited). What remains is ours: routing, auth, SQLite, fork+exec of the
//! child, reading its output, and the response. Prints p50, p90, p99 and max in milliseconds.
//!
//! The fake's own timing starts at its `main`, so process creation (fork, exec, dynamic loading; about 1 ms on a
//! small VM) counts as ours there. For the other view, the bench also runs the fake directly from this process
//! the same way (args, prompt on stdin, read stdout, wait) and compares the round trip with that.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

const WARMUP: usize = 20;
const RUNS: usize = 500;

fn main() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_remote-agent"));
    let fake = bin.parent().unwrap().join("examples/fake-claude");
    assert!(
        fake.exists(),
        "{} is missing: run `cargo build --release --examples` first",
        fake.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let timing = dir.path().join("timing");
    std::fs::create_dir(dir.path().join("project")).unwrap();
    let mut server = Command::new(&bin)
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--project")
        .arg(dir.path().join("project"))
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env("AUTH_USERNAME", "bench")
        .env("AUTH_PASSWORD", "bench-password")
        .env("CLAUDE_BIN", &fake)
        .env("FAKE_CLAUDE_TIMING", &timing)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_string();

    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_nodelay(true).unwrap();
    let body = r#"{"message":"hi","conv_id":"bench"}"#;
    // "bench:bench-password" in base64 (serve refuses a password under 8 characters).
    let request = format!(
        "POST /api/chat HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut round_trips = Vec::new();
    for i in 0..WARMUP + RUNS {
        let started = Instant::now();
        conn.write_all(request.as_bytes()).unwrap();
        let response = read_response(&mut conn);
        let elapsed = started.elapsed();
        assert!(response.contains("\"success\":true"), "{response}");
        if std::env::var_os("BENCH_SLOW").is_some() && elapsed.as_micros() > 4000 {
            eprintln!("slow #{i}: {elapsed:?}");
        }
        if i >= WARMUP {
            round_trips.push(elapsed.as_nanos() as f64 / 1e6);
        }
    }
    let _ = server.kill();
    let _ = server.wait();

    let child_runs: Vec<f64> = std::fs::read_to_string(&timing)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Vec<u128> = l.split_whitespace().map(|n| n.parse().unwrap()).collect();
            (v[1] - v[0]) as f64 / 1e6
        })
        .collect();
    assert_eq!(child_runs.len(), WARMUP + RUNS);
    let mut direct = direct_runs(&fake, dir.path());
    let mut added: Vec<f64> = round_trips
        .iter()
        .zip(&child_runs[WARMUP..])
        .map(|(total, child)| total - child)
        .collect();
    let mut child: Vec<f64> = child_runs[WARMUP..].to_vec();
    let mut total = round_trips.clone();
    println!(
        "POST /api/chat, {RUNS} sequential messages to one conversation (after {WARMUP} warm-up)"
    );
    for (name, v) in [
        ("round trip", &mut total),
        ("child's own run", &mut child),
        ("added by us", &mut added),
        ("direct run", &mut direct),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "{name:>16}: p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            pct(v, 50.0),
            pct(v, 90.0),
            pct(v, 99.0),
            v[v.len() - 1]
        );
    }
    println!(
        "round trip minus direct run: p50 {:.3} ms  p99 {:.3} ms",
        pct(&total, 50.0) - pct(&direct, 50.0),
        pct(&total, 99.0) - pct(&direct, 99.0)
    );
}

/// Runs the fake as the server does, without the server: the cost of the child including its creation.
fn direct_runs(fake: &std::path::Path, home: &std::path::Path) -> Vec<f64> {
    let args = [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ];
    (0..WARMUP + RUNS)
        .map(|_| {
            let started = Instant::now();
            let mut child = Command::new(fake)
                .args(args)
                .env("HOME", home)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(b"hi").unwrap();
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert!(child.wait().unwrap().success());
            assert!(out.contains("\"type\":\"result\""));
            started.elapsed().as_nanos() as f64 / 1e6
        })
        .skip(WARMUP)
        .collect()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

/// Reads one HTTP/1.1 response with a Content-Length body and returns its body.
fn read_response(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        let n = conn.read(&mut byte).unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&byte[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            }
        }
    }
}
