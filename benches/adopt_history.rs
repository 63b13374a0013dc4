//! The first page of an adopted session's history (`GET /api/conversations/{id}/history`, 50 items) from a
//! 600 MiB session file in 2.1.332's shape (each exchange: a prompt, request blobs, thinking and a tool call, its
//! result, a reply, bookkeeping lines):
//!
//! 1. cold: the first page with the file evicted from the page cache (fsync, then `posix_fadvise(DONTNEED)`);
//! 2. warm: the first page again, median of 20;
//! 3. the page 100 pages back (following the cursors), warm;
//! 4. the server's RSS before and after.
//!
//! `cargo build --release --bins --examples`, then `cargo bench --bench adopt_history`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, status_kb};
use serde_json::json;

const SIZE: u64 = 600 * 1024 * 1024;
const ID: &str = "6a000000-0000-4000-8000-000000000600";

/// Writes the session file; returns its size.
fn build(config: &Path, cwd: &Path) -> u64 {
    let folder: String = cwd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = config.join("projects").join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{ID}.jsonl"));
    let file = std::fs::File::create(&path).unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let blob = "b".repeat(40_000);
    let mut written = 0u64;
    let mut i = 0u64;
    while written < SIZE {
        let ts = format!(
            "2026-11-{:02}T{:02}:{:02}:00.000Z",
            1 + i / 1440 % 28,
            i / 60 % 24,
            i % 60
        );
        let lines = [
            json!({"type": "user", "message": {"role": "user", "content": format!("task number {i}")},
                   "timestamp": ts, "cwd": cwd, "sessionId": ID, "version": "2.1.332"}),
            json!({"type": "api-request-blob", "message": {"role": "user", "content": blob}, "sessionId": ID}),
            json!({"type": "api-request", "requestId": format!("req_{i}"), "sessionId": ID}),
            json!({"type": "assistant", "timestamp": ts, "cwd": cwd, "sessionId": ID, "message": {"role": "assistant",
                   "content": [{"type": "thinking", "thinking": "Let me look at the files first.", "signature": "s"},
                               {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Bash",
                                "input": {"command": "ls -la src"}}]}}),
            json!({"type": "user", "timestamp": ts, "cwd": cwd, "sessionId": ID, "message": {"role": "user",
                   "content": [{"type": "tool_result", "tool_use_id": format!("toolu_{i}"),
                                "content": "total 8\n-rw-r--r-- 1 me me 120 main.rs"}]}}),
            json!({"type": "api-request-blob", "message": {"role": "user", "content": blob}, "sessionId": ID}),
            json!({"type": "assistant", "timestamp": ts, "cwd": cwd, "sessionId": ID, "message": {"role": "assistant",
                   "content": [{"type": "text", "text": format!("Done with task {i}: the files are listed.")}]}}),
            json!({"type": "tools-used", "tools": ["Bash"], "sessionId": ID}),
            json!({"type": "atis-latch", "sessionId": ID}),
            json!({"type": "cost-state", "total_cost_usd": 0.5, "sessionId": ID}),
        ];
        for l in lines {
            let text = format!("{l}\n");
            out.write_all(text.as_bytes()).unwrap();
            written += text.len() as u64;
        }
        i += 1;
    }
    let file = out.into_inner().unwrap();
    file.sync_all().unwrap();
    evict(&file);
    written
}

fn evict(file: &std::fs::File) {
    nix::fcntl::posix_fadvise(
        file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .unwrap();
}

fn page(server: &Server, conv: &str, before: Option<&str>) -> (Duration, serde_json::Value) {
    let query = before.map_or(String::new(), |b| format!("&before={b}"));
    let started = Instant::now();
    let resp = server.authed(
        "GET",
        &format!("/api/conversations/{conv}/history?limit=50{query}"),
        b"",
    );
    let took = started.elapsed();
    assert_eq!(resp.status, 200, "{}", resp.text());
    (took, resp.json())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let config = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .env("CLAUDE_CONFIG_DIR", config.path().display().to_string())
        .start();
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    let started = Instant::now();
    let size = build(config.path(), &project);
    eprintln!(
        "{:.0} MiB written in {:.1} s",
        size as f64 / (1u64 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    let resp = server.authed("POST", &format!("/api/claude-sessions/{ID}/adopt"), b"");
    assert_eq!(resp.status, 201, "{}", resp.text());
    let conv = resp.json()["id"].as_str().unwrap().to_string();
    // The adoption read the file's head and tail: out of the page cache again.
    let folder: String = project
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = config
        .path()
        .join("projects")
        .join(folder)
        .join(format!("{ID}.jsonl"));
    evict(&std::fs::File::open(&path).unwrap());

    let pid = server.pid();
    let rss_before = status_kb(pid, "VmRSS");
    let (cold, first) = page(&server, &conv, None);
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 50, "{first}");
    assert!(first["before"].is_string());
    let mut warm: Vec<Duration> = (0..20).map(|_| page(&server, &conv, None).0).collect();
    warm.sort();
    let mut before = first["before"].as_str().unwrap().to_string();
    for _ in 0..99 {
        let (_, p) = page(&server, &conv, Some(&before));
        before = p["before"].as_str().unwrap().to_string();
    }
    let mut deep: Vec<Duration> = (0..20)
        .map(|_| page(&server, &conv, Some(&before)).0)
        .collect();
    deep.sort();
    let rss_after = status_kb(pid, "VmRSS");
    println!(
        "cold (first page of 50, file not in the page cache): {:.1} ms",
        ms(cold)
    );
    println!(
        "warm first page (median of 20; min {:.1}, max {:.1}): {:.1} ms",
        ms(warm[0]),
        ms(warm[19]),
        ms(warm[10])
    );
    println!(
        "page 101 from the end (median of 20): {:.1} ms",
        ms(deep[10])
    );
    println!(
        "RSS: {rss_before} kB before, {rss_after} kB after (+{} kB)",
        rss_after.saturating_sub(rss_before)
    );
}
