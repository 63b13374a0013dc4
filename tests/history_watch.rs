//! `GET /api/claude-sessions` stays fresh without a walk of the tree at each request: a new session file, a file
//! that grows (a new title), a file deleted, each shows within a deadline, both with the watcher (`notify`, the
//! `projects` folder created after the server started) and in the polling fallback (forced with
//! `REMOTE_AGENT_HISTORY_POLL`).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::Server;
use serde_json::{Value, json};

const A: &str = "0a000000-0000-4000-8000-00000000000a";
const B: &str = "0b000000-0000-4000-8000-00000000000b";

fn folder_of(config: &Path, cwd: &Path) -> PathBuf {
    let name: String = cwd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    config.join("projects").join(name)
}

/// A session of one prompt, as the CLI writes it, in the project folder of `cwd`.
fn write_session(config: &Path, cwd: &Path, id: &str, prompt: &str) -> PathBuf {
    let dir = folder_of(config, cwd);
    std::fs::create_dir_all(&dir).unwrap();
    let line = json!({"type": "user", "message": {"role": "user", "content": prompt},
                      "timestamp": "2026-11-24T10:00:00.000Z", "cwd": cwd, "sessionId": id, "version": "2.1.197"});
    let path = dir.join(format!("{id}.jsonl"));
    std::fs::write(&path, format!("{line}\n")).unwrap();
    path
}

fn titles(server: &Server) -> Vec<(String, String)> {
    let r = server.authed("GET", "/api/claude-sessions", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let body: Value = r.json();
    body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["title"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits (listing again and again) until the listing is `want`.
fn wait_listing(server: &Server, what: &str, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let last = titles(server);
        if last == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: listed {last:?}, wanted {want:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn fresh_in(mode: &str, poll: Option<&str>) {
    let config = tempfile::tempdir().unwrap();
    let mut builder =
        Server::builder().env("CLAUDE_CONFIG_DIR", config.path().display().to_string());
    if let Some(secs) = poll {
        builder = builder.env("REMOTE_AGENT_HISTORY_POLL", secs);
    }
    let server = builder.start();
    let cwd = std::fs::canonicalize(server.path("project")).unwrap();
    // No `projects` yet: the first listing is empty and starts the watch.
    assert_eq!(titles(&server), vec![]);
    server.wait_log(&format!("session listing: {mode}"), 10);
    let status = server.authed("GET", "/api/status", b"").json();
    assert_eq!(status["session_listing"]["mode"], mode, "{status}");
    let every = poll.map(|s| json!(s.parse::<f64>().unwrap()));
    assert_eq!(
        status["session_listing"]["every_secs"],
        every.unwrap_or(Value::Null),
        "{status}"
    );

    let a = write_session(config.path(), &cwd, A, "first prompt");
    wait_listing(&server, "a session in a new folder", &[(A, "first prompt")]);
    let b = write_session(config.path(), &cwd, B, "second prompt");
    wait_listing(
        &server,
        "a second session in the same folder",
        &[(B, "second prompt"), (A, "first prompt")],
    );

    // The file grows: a rename in the terminal (`/rename`) appends a custom title.
    let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    let title =
        json!({"type": "custom-title", "customTitle": "Renamed at the desk", "sessionId": A});
    writeln!(f, "{title}").unwrap();
    drop(f);
    wait_listing(
        &server,
        "the new title",
        &[(B, "second prompt"), (A, "Renamed at the desk")],
    );

    std::fs::remove_file(&b).unwrap();
    wait_listing(
        &server,
        "the deleted session gone",
        &[(A, "Renamed at the desk")],
    );
    // The whole folder gone.
    std::fs::remove_dir_all(folder_of(config.path(), &cwd)).unwrap();
    wait_listing(&server, "the deleted folder's sessions gone", &[]);
}

#[test]
fn the_listing_follows_new_grown_and_deleted_files_with_the_watcher() {
    fresh_in("watching", None);
}

#[test]
fn the_listing_follows_new_grown_and_deleted_files_when_polling() {
    fresh_in("polling", Some("1"));
}
