//! Disk use of a large turn: database + WAL size over the bytes of the turn's events (every event's `data`, as
//! served), for a turn of about 50 MB (a 16 MB reply in 400,000 deltas of 40 characters, its message and its
//! result); the WAL right after the turn and once the checkpointer has cut it back; and how long the
//! `PRAGMA quick_check` that `serve` runs at every start takes on the database that leaves.
//!
//! Uses the release binary and the fake (`cargo build --release --examples`; benches/run.sh does both).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Server, SseStream, wait_for};
use serde_json::json;

fn size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() {
    let mut server = Server::start();
    server.create(json!({"id": "big"}));
    let db = server.path("data").join("remote-agent.db");
    let wal = server.path("data").join("remote-agent.db-wal");
    let before = size(&db) + size(&wal);
    let started = Instant::now();
    let id = server.send(
        "big",
        json!({"message": "[[reply:16000000]] [[deltas:400000]] a large reply"}),
    );
    let status = wait_for("the turn to end", 300, || {
        let t = server
            .authed("GET", &format!("/api/turns/{id}"), b"")
            .json();
        let s = t["status"].as_str().unwrap_or("").to_string();
        (s != "queued" && s != "running").then_some(s)
    });
    let took = started.elapsed();
    assert_eq!(
        status,
        "succeeded",
        "{}",
        server
            .authed("GET", &format!("/api/turns/{id}"), b"")
            .text()
    );
    let wal_at_end = size(&wal);
    let mut stream = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    let (mut events, mut bytes) = (0u64, 0u64);
    while let Some(e) = stream.next() {
        if e.event != "keepalive" {
            events += 1;
            bytes += e.data.to_string().len() as u64;
        }
    }
    wait_for("the WAL to be cut back", 30, || {
        (size(&wal) <= 4 << 20).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let after = size(&db) + size(&wal);
    println!(
        "a turn of {events} events, {:.1} MB of event data, ran in {:.2} s",
        mb(bytes),
        took.as_secs_f64()
    );
    println!(
        "database + WAL grew {:.1} MB: {:.2}x the event bytes (database {:.1} MB, WAL {:.1} MB; WAL {:.1} MB right \
         after the turn)",
        mb(after - before),
        (after - before) as f64 / bytes as f64,
        mb(size(&db)),
        mb(size(&wal)),
        mb(wal_at_end)
    );
    server.stop(15);
    println!(
        "after a clean exit: database {:.1} MB, WAL {:.1} MB",
        mb(size(&db)),
        mb(size(&wal))
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let verdict: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(verdict, "ok");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "PRAGMA quick_check of that {:.1} MB database: median {:.1} ms (min {:.1}, max {:.1})",
        mb(size(&db)),
        times[2],
        times[0],
        times[4]
    );
}
