//! Listing the CLI's own sessions (`GET /api/claude-sessions`) over 1,000 session files totalling 2 GiB:
//!
//! 1. cold: the first listing (nothing cached by the server, and the files' pages evicted from the page cache with
//!    `posix_fadvise(DONTNEED)` after an fsync, so the head and tail of each file come from the disk);
//! 2. warm: the listings after it (the files unchanged: the watcher reports nothing to look at), median of 20;
//! 3. the first listing of a restarted server, the files now in the page cache (the reading and parsing alone);
//! 4. the server's RSS (VmRSS) before the first listing and after the last;
//! 5. what keeping the listing fresh costs (`history/watch`), with the watcher and with the polling fallback
//!    (`REMOTE_AGENT_HISTORY_POLL=2`): the server's CPU time (utime + stime of /proc/PID/stat) over 30 idle seconds
//!    after a listing, and over 30 s of a phone asking for the first page every second; the warm listing's time.
//!
//! Each file is 2 MiB: 96 KiB of lines in 2.1.332's shape at each end (a prompt, request blobs, bookkeeping, an AI
//! title, `cost-state` last) around a sparse middle, which a listing never reads.
//!
//! `cargo build --release --bins --examples`, then `cargo bench --bench claude_sessions`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, status_kb};
use serde_json::json;

const SESSIONS: usize = 1000;
const SIZE: u64 = 2 * 1024 * 1024;
const END: usize = 96 * 1024;

/// Lines in 2.1.332's shape until `bytes` are written.
fn lines(cwd: &Path, id: &str, minute: usize, bytes: usize, last: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let ts = format!(
        "2026-11-{:02}T{:02}:{:02}:00.000Z",
        1 + minute / 1440,
        minute / 60 % 24,
        minute % 60
    );
    if !last {
        let first = json!({"type": "user", "message": {"role": "user", "content": format!("task number {minute}")},
                           "timestamp": ts, "cwd": cwd, "sessionId": id, "version": "2.1.332"});
        writeln!(out, "{first}").unwrap();
    }
    let blob = "b".repeat(6000);
    let mut i = 0;
    while out.len() < bytes {
        let lines = [
            json!({"type": "api-request-blob", "message": {"role": "user", "content": blob}, "sessionId": id}),
            json!({"type": "api-request", "requestId": format!("req_{i}"), "sessionId": id}),
            json!({"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "working on it"}]},
                   "timestamp": ts, "cwd": cwd, "sessionId": id}),
            json!({"type": "tools-used", "tools": ["Read", "Edit"], "sessionId": id}),
            json!({"type": "atis-latch", "sessionId": id}),
        ];
        for l in lines {
            writeln!(out, "{l}").unwrap();
        }
        i += 1;
    }
    if last {
        writeln!(
            out,
            "{}",
            json!({"type": "ai-title", "aiTitle": format!("Session {minute}"), "sessionId": id})
        )
        .unwrap();
        writeln!(
            out,
            "{}",
            json!({"type": "cost-state", "total_cost_usd": 0.5, "sessionId": id})
        )
        .unwrap();
    }
    out
}

fn build(config: &Path, project: &Path) -> u64 {
    let mut total = 0;
    for n in 0..SESSIONS {
        let cwd = project.join(format!("app{}", n % 20));
        std::fs::create_dir_all(&cwd).unwrap();
        let folder: String = cwd
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dir = config.join("projects").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        let path = dir.join(format!("{id}.jsonl"));
        let head = lines(&cwd, &id, n, END, false);
        let tail = lines(&cwd, &id, n, END, true);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&head).unwrap();
        // The sparse middle ends in a newline, so that the tail starts on a line.
        f.set_len(SIZE - tail.len() as u64 - 1).unwrap();
        use std::io::Seek;
        f.seek(std::io::SeekFrom::End(0)).unwrap();
        f.write_all(b"\n").unwrap();
        f.write_all(&tail).unwrap();
        f.sync_all().unwrap();
        nix::fcntl::posix_fadvise(
            &f,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
        total += f.metadata().unwrap().len();
    }
    total
}

fn list(server: &Server) -> (Duration, usize) {
    let started = Instant::now();
    let mut count = 0;
    let mut cursor = String::new();
    // The first page is what the phone asks for; the whole list is walked once to check it is all there.
    let resp = server.authed(
        "GET",
        &format!("/api/claude-sessions?limit=50{cursor}"),
        b"",
    );
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut page = resp.json();
    loop {
        count += page["sessions"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
        page = server
            .authed(
                "GET",
                &format!("/api/claude-sessions?limit=200{cursor}"),
                b"",
            )
            .json();
    }
    (took, count)
}

fn main() {
    let config = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .env("CLAUDE_CONFIG_DIR", config.path().display().to_string())
        .start();
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    let started = Instant::now();
    let total = build(config.path(), &project);
    eprintln!(
        "{SESSIONS} sessions, {:.2} GiB apparent, written in {:.1} s",
        total as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64()
    );
    let pid = server.pid();
    let rss_before = status_kb(pid, "VmRSS");
    let (cold, count) = list(&server);
    assert_eq!(count, SESSIONS);
    let mut warm: Vec<Duration> = (0..20).map(|_| list(&server).0).collect();
    warm.sort();
    let rss_after = status_kb(pid, "VmRSS");
    let hwm = status_kb(pid, "VmHWM");
    println!(
        "cold (first listing, first page of 50; files not in the page cache): {:.1} ms",
        cold.as_secs_f64() * 1000.0
    );
    println!(
        "warm (median of 20; min {:.1}, max {:.1}): {:.1} ms",
        warm[0].as_secs_f64() * 1000.0,
        warm[19].as_secs_f64() * 1000.0,
        warm[10].as_secs_f64() * 1000.0
    );
    // A restarted server over files the page cache holds: the reading and parsing alone.
    let mut server = server;
    server.restart();
    let (cached, _) = list(&server);
    println!(
        "first listing of a restarted server (files in the page cache): {:.1} ms",
        cached.as_secs_f64() * 1000.0
    );
    println!(
        "RSS: {rss_before} kB before, {rss_after} kB after (+{} kB); peak {hwm} kB",
        rss_after.saturating_sub(rss_before)
    );
    watch_cost("watching", &server);
    drop(server);
    let polling = Server::builder()
        .env("CLAUDE_CONFIG_DIR", config.path().display().to_string())
        .env("REMOTE_AGENT_HISTORY_POLL", "2")
        .start();
    list(&polling);
    polling.wait_log("session listing: polling", 10);
    watch_cost("polling every 2 s", &polling);
}

/// The CPU time a process has used (user + system), in milliseconds.
fn cpu_ms(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command's name, which ends with the last ')'.
    let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap_or(100);
    ticks as f64 * 1000.0 / hz as f64
}

/// The first page, as the phone asks for it.
fn first_page(server: &Server) -> Duration {
    let started = Instant::now();
    let resp = server.authed("GET", "/api/claude-sessions?limit=50", b"");
    assert_eq!(resp.status, 200);
    started.elapsed()
}

/// Idle CPU over 30 s, CPU over 30 s of one listing a second, and the warm listing's time, of a server that has
/// listed the sessions once.
fn watch_cost(mode: &str, server: &Server) {
    let pid = server.pid();
    first_page(server);
    let before = cpu_ms(pid);
    std::thread::sleep(Duration::from_secs(30));
    let idle = cpu_ms(pid) - before;
    let before = cpu_ms(pid);
    let started = Instant::now();
    for n in 1..=30 {
        first_page(server);
        if let Some(left) = Duration::from_secs(n).checked_sub(started.elapsed()) {
            std::thread::sleep(left);
        }
    }
    let asked = cpu_ms(pid) - before;
    let mut warm: Vec<Duration> = (0..20).map(|_| first_page(server)).collect();
    warm.sort();
    println!(
        "{mode}: CPU {idle:.0} ms over 30 idle s; {asked:.0} ms over 30 s of a listing a second; \
         warm listing median {:.2} ms (min {:.2}, max {:.2})",
        warm[10].as_secs_f64() * 1000.0,
        warm[0].as_secs_f64() * 1000.0,
        warm[19].as_secs_f64() * 1000.0
    );
}
