//! Storage hardening: a disk that fills during a turn, a session kept from the CLI's init, a damaged or emptied
//! database refused at start, storage errors in plain words, packed event rows with exact replay, a WAL that
//! shrinks after a large turn, and the partial reply of a turn that stopped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, Sse, SseStream, wait_for};
use serde_json::{Value, json};

fn turn(server: &Server, id: &str) -> Value {
    let resp = server.authed("GET", &format!("/api/turns/{id}"), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn wait_ended(server: &Server, id: &str, secs: u64) -> Value {
    wait_for("the turn to end", secs, || {
        let t = turn(server, id);
        (!matches!(t["status"].as_str(), Some("queued" | "running"))).then_some(t)
    })
}

fn read_all(server: &Server, id: &str, after: u64) -> Vec<Sse> {
    let mut s = SseStream::open(
        server,
        "GET",
        &format!("/api/turns/{id}/events?after={after}"),
        &[],
    );
    assert_eq!(s.status, 200, "{:?}", s.headers);
    s.rest()
}

fn conversation(server: &Server, id: &str) -> Value {
    let resp = server.authed("GET", &format!("/api/conversations/{id}"), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// Runs a command to its exit, or kills it after `secs` (None: it was still running).
fn run_to_exit(mut cmd: Command, secs: u64) -> Option<Output> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A small tmpfs mounted over a directory for the length of a test (needs root, as in CI).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with one file, until it has no space left.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xA5u8; 4096];
    while f.write_all(&block).is_ok() {}
    // Whatever a partial block could still take.
    while f.write_all(&[0]).is_ok() {}
    path
}

#[test]
fn a_disk_that_fills_during_a_turn_ends_it_failed_with_nothing_shown_unstored() {
    let mut tmpfs = None;
    let mut server = Server::start();
    server.create(json!({"id": "c"}));
    // Move the data dir onto a 3 MB file system of its own.
    server.stop(15);
    let data = server.path("data");
    let saved = server.path("saved");
    std::fs::rename(&data, &saved).unwrap();
    std::fs::create_dir(&data).unwrap();
    tmpfs = tmpfs.or(Tmpfs::mount(&data, "3m"));
    if tmpfs.is_none() {
        common::skip(
            "a_disk_that_fills_during_a_turn_ends_it_failed_with_nothing_shown_unstored",
            "cannot mount a tmpfs (not root?)",
        );
        return;
    }
    for entry in std::fs::read_dir(&saved).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    server.restart();

    let id = server.send("c", json!({"message": "[[paced:3000:5]] go"}));
    let mut live = SseStream::open(&server, "POST", &format!("/api/turns/{id}/events"), &[]);
    let mut seen: Vec<Sse> = Vec::new();
    while seen.iter().filter(|e| e.event == "text_delta").count() < 20 {
        let e = live.next().expect("the stream ended early");
        if e.event != "keepalive" {
            seen.push(e);
        }
    }
    let filler = fill(&data);
    server.wait_log("could not store events", 30);
    // While the disk is full, a write through the API says so. (SQLite can still reuse WAL space it has, so a
    // write may land now and then: try fresh ids until one meets the full disk.)
    let mut n = 0;
    let resp = wait_for("a write to meet the full disk", 20, || {
        n += 1;
        let body = json!({ "id": format!("other{n}") }).to_string();
        let resp = server.authed("POST", "/api/conversations", body.as_bytes());
        (resp.status != 201).then_some(resp)
    });
    assert_eq!(resp.status, 507, "{}", resp.text());
    assert_eq!(resp.json(), json!({"error": "disk full"}));
    std::fs::remove_file(&filler).unwrap();

    seen.extend(live.rest());
    let t = wait_ended(&server, &id, 30);
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"], "disk full", "{t}");
    let n = seen.len();
    assert_eq!(seen[n - 2].event, "error");
    assert_eq!(seen[n - 2].data, json!({"error": "disk full"}));
    assert_eq!(seen[n - 1].event, "done");
    assert_eq!(seen[n - 1].data, json!({"status": "failed"}));
    // What the live reader saw is exactly what was stored: the replay is the same stream.
    assert_eq!(read_all(&server, &id, 0), seen);
    let ids: Vec<u64> = seen.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, (1..=n as u64).collect::<Vec<_>>());

    // The conversation is free: it is not busy and takes the next message.
    assert_eq!(conversation(&server, "c")["active_turn_id"], Value::Null);
    let next = server.send("c", json!({"message": "again"}));
    assert_eq!(wait_ended(&server, &next, 30)["status"], "succeeded");
    server.stop(15);
    drop(tmpfs);
}

#[test]
fn a_first_turn_that_is_cancelled_still_leaves_its_session() {
    let mut server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[slow:30]] first"}));
    // The CLI has announced its session once the turn shows running and the fake has recorded its run.
    wait_for("the session to be stored", 15, || {
        conversation(&server, "c")["session_id"]
            .as_str()
            .map(str::to_string)
    });
    let resp = server.authed("POST", &format!("/api/turns/{id}/cancel"), b"");
    assert_eq!(resp.status, 202, "{}", resp.text());
    let t = wait_ended(&server, &id, 30);
    assert_eq!(t["status"], "cancelled");
    let session = conversation(&server, "c")["session_id"]
        .as_str()
        .expect("the cancelled first turn's session is kept")
        .to_string();
    assert_eq!(t["session_id"], session.as_str());
    // The cancel interrupted the turn, not the process: the next message goes on in the same session on it.
    let next = server.send("c", json!({"message": "second"}));
    let t = wait_ended(&server, &next, 30);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["session_id"], session.as_str());
    assert_eq!(t["response"], "echo[2]: second", "{t}");
    assert_eq!(server.recorded_runs().len(), 1);
    // Once that process is gone (a restart), the next message resumes the session.
    server.stop(15);
    server.restart();
    let third = server.send("c", json!({"message": "third"}));
    let t = wait_ended(&server, &third, 30);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["response"], "echo[3]: third", "{t}");
    let runs = server.recorded_runs();
    assert_eq!(runs.len(), 2);
    let (_, argv) = runs
        .into_iter()
        .find(|(_, argv)| argv.iter().any(|a| a.starts_with("--resume")))
        .expect("a run resumed");
    let resume = argv
        .iter()
        .position(|a| a == "--resume")
        .map(|i| argv[i + 1].clone())
        .or_else(|| {
            argv.iter()
                .find_map(|a| a.strip_prefix("--resume=").map(str::to_string))
        });
    assert_eq!(resume.as_deref(), Some(session.as_str()), "{argv:?}");
}

fn db(server: &Server) -> PathBuf {
    server.path("data").join("remote-agent.db")
}

fn doctor(server: &Server) -> Output {
    let mut cmd = server.subcommand(&["doctor", "--port", "0"]);
    cmd.current_dir(server.path("project"));
    run_to_exit(cmd, 60).expect("doctor finishes")
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_damaged_database_is_refused_at_start_naming_doctor() {
    let mut server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "hello"}));
    wait_ended(&server, &id, 30);
    server.stop(15);
    let path = db(&server);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192, "{} bytes", bytes.len());
    // Garbage past page 1: the header is intact, the tables are not.
    for b in &mut bytes[4096..] {
        *b = 0x5A;
    }
    std::fs::write(&path, &bytes).unwrap();
    let out = run_to_exit(server.command(), 20).expect("serve refuses to start");
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("remote-agent doctor"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("damaged"), "{text}");
    // The file was not written to.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let out = doctor(&server);
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("is damaged"), "{text}");
}

#[test]
fn an_emptied_database_is_refused_not_recreated() {
    let mut server = Server::start();
    server.create(json!({"id": "c"}));
    server.stop(15);
    let path = db(&server);
    std::fs::write(&path, b"").unwrap();
    let _ = std::fs::remove_file(server.path("data").join("remote-agent.db-wal"));
    let out = run_to_exit(server.command(), 20).expect("serve refuses to start");
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("remote-agent doctor"), "{text}");
    assert!(text.contains("is empty"), "{text}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left as it was");
    let out = doctor(&server);
    let text = said(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("is empty"), "{text}");
}

#[test]
fn deltas_share_rows_and_every_resume_point_replays_exactly() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[deltas:3000]] hi"}));
    let mut live = SseStream::open(&server, "POST", &format!("/api/turns/{id}/events"), &[]);
    let all = live.rest();
    wait_ended(&server, &id, 60);
    assert_eq!(all.last().unwrap().event, "done");
    let n = all.len() as u64;
    assert!(n > 3000, "{n}");
    for after in [0, 1, 2, 3, 4, 100, 1234, 2999, n - 3, n - 2, n - 1] {
        let from = read_all(&server, &id, after);
        assert_eq!(from, all[after as usize..].to_vec(), "after {after}");
    }
    // The long poll resumes the same way from inside a row.
    let resp = server.authed(
        "GET",
        &format!("/api/turns/{id}/events.json?after=777&wait=1"),
        b"",
    );
    let first = &resp.json()["events"][0];
    assert_eq!(first["id"], 778);
    assert_eq!(first["event"], all[777].event.as_str());
    // Few rows hold them: a few kB each, not one per delta.
    let conn = rusqlite::Connection::open(db(&server)).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE turn_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(rows < 100, "{rows} rows for {n} events");
}

#[test]
fn the_wal_shrinks_after_a_large_turn() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    // A 3 MB reply: its deltas, message and result, and the turn's response, about 12 MB written.
    let id = server.send(
        "c",
        json!({"message": "[[reply:3000000]] [[deltas:1000]] big"}),
    );
    assert_eq!(wait_ended(&server, &id, 120)["status"], "succeeded");
    let wal = server.path("data").join("remote-agent.db-wal");
    wait_for("the WAL to be cut back", 20, || {
        let len = std::fs::metadata(&wal).map_or(0, |m| m.len());
        (len <= 4 << 20).then_some(())
    });
}

#[test]
fn a_turn_stopped_mid_reply_shows_its_partial_reply_in_the_transcript() {
    let mut server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[paced:2000:10]] go"}));
    let mut live = SseStream::open(&server, "POST", &format!("/api/turns/{id}/events"), &[]);
    let mut text = String::new();
    let mut deltas = 0;
    while deltas < 10 {
        let e = live.next().expect("stream ended early");
        if e.event == "text_delta" {
            deltas += 1;
            text.push_str(e.data["text"].as_str().unwrap());
        }
    }
    drop(live);
    server.stop(15);
    server.restart();
    let t = turn(&server, &id);
    assert_eq!(t["status"], "interrupted");
    // The whole partial reply is what was stored: at least what the reader saw.
    let stored: String = read_all(&server, &id, 0)
        .iter()
        .filter(|e| e.event == "text_delta")
        .map(|e| e.data["text"].as_str().unwrap().to_string())
        .collect();
    assert!(stored.starts_with(&text));
    let messages = conversation(&server, "c")["messages"].clone();
    let messages = messages.as_array().unwrap();
    let partial = messages
        .iter()
        .find(|m| m["type"] == "assistant")
        .expect("the partial reply is in the transcript");
    assert_eq!(partial["partial"], true);
    assert_eq!(partial["turn_id"], id.as_str());
    assert_eq!(partial["text"], stored.as_str());
    let result = messages.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["status"], "interrupted");
}
