//! The CLI's own warm time, measured directly: the reference the daemon's warm path is compared to.
//!
//! Starts the real Claude Code CLI (`REMOTE_AGENT_REAL_CLAUDE`, else `claude` on PATH) once, in the long-lived
//! stdio mode the daemon uses (`-p --input-format stream-json --output-format stream-json --verbose
//! --include-partial-messages --permission-prompt-tool stdio`), against the instant mock Messages API
//! (tests/common/mock_api.rs) with a temp HOME, and runs one warm-up turn and then 30 turns on that process. For
//! each turn it takes the time from writing the user line to the first stdout line of the turn, to the first
//! `stream_event` text delta, and to the `result`, and prints p50 and p90 in milliseconds (plus the first turn's
//! figures, which include the process's start-up).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use common::mock_api::MockApi;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

const TURNS: usize = 30;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    println!(
        "{name}: n {}  p50 {:.1} ms  p90 {:.1} ms  min {:.1} ms  max {:.1} ms",
        v.len(),
        pct(&v, 50.0),
        pct(&v, 90.0),
        v[0],
        v[v.len() - 1]
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let Some(claude) = common::real_claude("warm_cli") else {
        return;
    };
    let version = Command::new(&claude).arg("--version").output().unwrap();
    println!("claude {}", String::from_utf8_lossy(&version.stdout).trim());
    let mock = MockApi::start();
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let config = home.path().join(".claude");
    std::fs::create_dir_all(&config).unwrap();
    let mut cmd = Command::new(&claude);
    // The flags the daemon starts a live process with.
    cmd.args(remote_agent::claude::args(&remote_agent::claude::Spec {
        bin: String::new(),
        cwd: project.path().to_path_buf(),
        resume: None,
        options: Vec::new(),
        marker: remote_agent::claude::Marker::new("", project.path()),
    }))
    .current_dir(project.path())
    .env("HOME", home.path())
    .env("CLAUDE_CONFIG_DIR", &config)
    .env("ANTHROPIC_BASE_URL", mock.base_url())
    .env("ANTHROPIC_API_KEY", "x")
    .env("CLAUDE_CODE_MAX_RETRIES", "0")
    .process_group(0)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if nix::unistd::geteuid().is_root() {
        cmd.env("IS_SANDBOX", "1");
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn claude");
    let pgid = Pid::from_raw(child.id() as i32);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    // Each line is stamped when it is read, on a thread of its own.
    let (tx, rx) = channel::<(Instant, Value)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let at = Instant::now();
            let Ok(v) = serde_json::from_str(&line) else {
                continue;
            };
            if tx.send((at, v)).is_err() {
                break;
            }
        }
    });

    let (mut first_line, mut first_delta, mut result) = (Vec::new(), Vec::new(), Vec::new());
    for turn in 0..=TURNS {
        let text = format!("warm turn {turn}");
        let line = json!({"type": "user", "message": {"role": "user", "content": text},
            "parent_tool_use_id": null, "session_id": ""});
        let sent = Instant::now();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let (mut line_at, mut delta_at) = (None, None);
        let done = loop {
            let (at, v) = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("turn {turn}: no output ({e})"));
            line_at.get_or_insert(at);
            if delta_at.is_none()
                && v["type"] == "stream_event"
                && v["event"]["delta"]["type"] == "text_delta"
            {
                delta_at = Some(at);
            }
            if v["type"] == "result" {
                assert_eq!(v["is_error"], false, "turn {turn}: {v}");
                assert_eq!(v["result"], format!("mock reply: {text}"), "turn {turn}");
                break at;
            }
        };
        let line_at = line_at.unwrap();
        let delta_at = delta_at.unwrap_or_else(|| panic!("turn {turn}: no text delta"));
        if turn == 0 {
            println!(
                "first turn (spawn {:.0} ms before the line): first line {:.1} ms, first text delta {:.1} ms, result {:.1} ms",
                ms(sent - started),
                ms(line_at - sent),
                ms(delta_at - sent),
                ms(done - sent)
            );
            continue;
        }
        first_line.push(ms(line_at - sent));
        first_delta.push(ms(delta_at - sent));
        result.push(ms(done - sent));
    }
    summary("warm turn: user line -> first stdout line", first_line);
    summary("warm turn: user line -> first text delta", first_delta);
    summary("warm turn: user line -> result", result);

    drop(stdin);
    let _ = killpg(pgid, Signal::SIGKILL);
    let _ = child.wait();
}
