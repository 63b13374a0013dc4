//! `GET /api/conversations/{id}/desk`: a terminal `claude` on the same session is seen (by its arguments, by `-c`
//! in the project, by the session's file open) and gone once it exits; the server's own warm child is not counted.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::Server;
use serde_json::{Value, json};

/// A stand-in for Claude Code open in a terminal: a script named `claude` that sleeps, run by `sh` (so its command
/// line is `/bin/sh …/claude ARGS`), holding `open` open when given.
struct Terminal {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Terminal {
    fn start(args: &[&str], cwd: &Path, open: Option<&Path>) -> Terminal {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("claude");
        let hold = match open {
            Some(f) => format!("exec 3<'{}'\n", f.display()),
            None => String::new(),
        };
        std::fs::write(&script, format!("#!/bin/sh\n{hold}sleep 300\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let child = Command::new(&script)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so that stopping it stops its `sleep` too (a leftover would hold the test's output).
            .process_group(0)
            .spawn()
            .unwrap();
        Terminal { child, _dir: dir }
    }

    fn pid(&self) -> i64 {
        self.child.id() as i64
    }

    /// Kills the script and its `sleep`, and reaps the script.
    fn stop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stop();
    }
}

fn desk(server: &Server, conv: &str) -> Value {
    let r = server.authed("GET", &format!("/api/conversations/{conv}/desk"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until the answer for `conv` satisfies `ok` (the server keeps a scan for a second).
fn wait_desk(server: &Server, conv: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    common::wait_for(what, 10, || {
        let d = desk(server, conv);
        ok(&d).then_some(d)
    })
}

/// The fake CLI under the name `claude`, as the real one is installed: so the server's own child looks like a
/// terminal's to anything that goes by names alone.
fn fake_named_claude() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("claude");
    std::os::unix::fs::symlink(common::fake_claude(), &link).unwrap();
    (dir, link)
}

#[test]
fn a_terminal_claude_on_the_session_is_seen_until_it_exits_and_ours_is_not() {
    let (_bin, claude) = fake_named_claude();
    let mut server = Server::builder().claude(&claude).start();
    server.create(json!({"id": "d"}));
    let r = server
        .chat(&json!({"message": "hello", "conv_id": "d"}))
        .json();
    assert_eq!(r["success"], true, "{r}");
    let session = r["session_id"].as_str().unwrap().to_string();

    // A conversation without a session: nothing to hold.
    server.create(json!({"id": "fresh"}));
    assert_eq!(
        desk(&server, "fresh"),
        json!({"live": false, "pids": [], "how": null})
    );
    let missing = server.authed("GET", "/api/conversations/nope/desk", b"");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());

    // After a restart the next message starts our warm child with `--resume <session>`: it is ours, not counted.
    server.stop(15);
    server.restart();
    let r = server
        .chat(&json!({"message": "again", "conv_id": "d"}))
        .json();
    assert_eq!(r["success"], true, "{r}");
    let resume = format!("--resume\0{session}");
    let ours = common::wait_for("our warm child", 10, || {
        common::pids_with_env("REMOTE_AGENT_CONVERSATION_ID=d")
            .into_iter()
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&resume))
            })
    });
    let quiet = desk(&server, "d");
    assert_eq!(
        quiet["live"], false,
        "our child {ours} was counted: {quiet}"
    );

    // `claude --resume <session>` in a terminal, elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut by_args = Terminal::start(&["--resume", &session], elsewhere.path(), None);
    let seen = wait_desk(&server, "d", "the terminal by its arguments", |d| {
        d["live"] == true
    });
    assert_eq!(seen["pids"], json!([by_args.pid()]), "{seen}");
    assert_eq!(seen["how"], "args");
    by_args.stop();
    by_args.child.wait().unwrap();
    wait_desk(&server, "d", "the killed terminal gone", |d| {
        d["live"] == false && d["pids"] == json!([])
    });

    // `claude -c` in the project.
    let continuing = Terminal::start(&["-c"], &server.path("project"), None);
    let seen = wait_desk(
        &server,
        "d",
        "the terminal continuing in the project",
        |d| d["live"] == true,
    );
    assert_eq!(seen["pids"], json!([continuing.pid()]));
    assert_eq!(seen["how"], "continue");
    drop(continuing);
    // `-c` elsewhere is another project's latest session.
    let _other = Terminal::start(&["-c"], elsewhere.path(), None);
    wait_desk(&server, "d", "a -c elsewhere not counted", |d| {
        d["live"] == false
    });

    // A `claude` with the session's file open.
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    let folder: String = project
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = server.path("home/.claude/projects").join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{session}.jsonl"));
    std::fs::write(&file, "{}\n").unwrap();
    let holding = Terminal::start(&[], elsewhere.path(), Some(&file));
    let seen = wait_desk(&server, "d", "the terminal with the file open", |d| {
        d["live"] == true
    });
    assert_eq!(seen["pids"], json!([holding.pid()]));
    assert_eq!(seen["how"], "open-file");
}
