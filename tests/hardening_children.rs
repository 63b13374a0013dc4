//! The children we run (claude under `serve`; `serve` and cloudflared under `up`): a runaway stdout line, a
//! `serve` killed mid-turn, stopped (SIGSTOP) children, and the umask Claude creates files with.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::up::Up;
use common::{Server, SseStream, alive, status_kb, unsafe_kill, wait_for};
use serde_json::{Value, json};

fn turn(server: &Server, id: &str) -> Value {
    let resp = server.authed("GET", &format!("/api/turns/{id}"), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn wait_status(server: &Server, id: &str, secs: u64) -> Value {
    wait_for("the turn to end", secs, || {
        let t = turn(server, id);
        (!matches!(t["status"].as_str(), Some("queued" | "running"))).then_some(t)
    })
}

/// Waits until the turn's claude has printed its tool call (it then sleeps in its "tool"); returns its pid.
fn wait_in_tool(server: &Server, id: &str) -> i32 {
    let mut events = SseStream::open(server, "GET", &format!("/api/turns/{id}/events"), &[]);
    while let Some(e) = events.next() {
        if e.event == "tool_use" {
            break;
        }
    }
    server.recorded_runs().pop().unwrap().0.parse().unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The umask these tests start servers with: one that neither ours (0077) nor the usual default (0022) is.
const USER_UMASK: u32 = 0o027;

/// Sets this test process's umask, which the servers it starts inherit (every test here sets the same one).
fn user_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(USER_UMASK));
}

#[test]
fn a_runaway_stdout_line_fails_the_turn_and_stops_claude() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[huge-line:200]] [[slow:60]]"}));
    let t = wait_status(&server, &id, 30);
    assert_eq!(t["status"], "failed", "{t}");
    let error = t["error"].as_str().unwrap();
    assert!(
        error.contains("longer than 16 MiB"),
        "a clear error: {error}"
    );
    let (pid, _) = server.recorded_runs().pop().unwrap();
    let pid: i32 = pid.parse().unwrap();
    wait_for("claude to be stopped", 10, || (!alive(pid)).then_some(()));
    // The 200 MB line was never held: the peak stays near the 16 MiB cap, not the line's size.
    let peak_mib = status_kb(server.pid(), "VmHWM") / 1024;
    eprintln!("serve's peak RSS after a 200 MB line: {peak_mib} MiB");
    assert!(peak_mib < 100, "serve peaked at {peak_mib} MiB");
    // The conversation goes on.
    let next = server.send("c", json!({"message": "after"}));
    assert_eq!(wait_status(&server, &next, 10)["status"], "succeeded");
}

#[test]
fn claude_dies_with_a_killed_serve() {
    let mut server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[tool]] [[slow:60]]"}));
    let pid = wait_in_tool(&server, &id);
    server.stop(9);
    wait_for("claude to die with serve", 10, || {
        (!alive(pid)).then_some(())
    });
    server.restart();
    assert_eq!(turn(&server, &id)["status"], "interrupted");
}

#[test]
fn a_stopped_claude_is_cancelled_without_waiting_out_the_ladder() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[tool]] [[slow:60]]"}));
    let pid = wait_in_tool(&server, &id);
    unsafe_kill(pid, 19); // SIGSTOP
    wait_for("claude to be stopped", 10, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .filter(|s| s.rsplit_once(')').is_some_and(|(_, r)| r.starts_with(" T")))
    });
    let started = Instant::now();
    let resp = server.authed("POST", &format!("/api/turns/{id}/cancel"), b"");
    assert_eq!(resp.status, 202);
    let t = wait_status(&server, &id, 15);
    let took = started.elapsed();
    assert_eq!(t["status"], "cancelled", "{t}");
    wait_for("claude to be gone", 10, || (!alive(pid)).then_some(()));
    // Continued along with SIGINT, it aborted as the CLI does (its interrupt result), instead of lying stopped
    // through SIGINT and SIGTERM until SIGKILL, 6 s later.
    let events = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]).rest();
    assert!(
        events
            .iter()
            .any(|e| e.event == "result" && e.data["is_error"] == true),
        "no interrupt result: {events:?}"
    );
    eprintln!("a stopped claude was cancelled in {took:?}");
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
}

#[test]
fn stopped_children_of_up_are_replaced_and_stopped_without_waiting_out_the_grace() {
    let mut up = Up::builder().arg("--health-timeout").arg("2").start();
    up.wait_line("tunnel connected", 0, 20);
    let serve = up.child_pid("serve");
    unsafe_kill(serve, 19); // SIGSTOP
    up.wait_line("has not answered /health", 0, 20);
    let noticed = Instant::now();
    wait_for("a new serve", 20, || {
        (up.child_pid("serve") != serve).then_some(())
    });
    let replaced = noticed.elapsed();
    wait_for("the stopped serve to be gone", 10, || {
        (!alive(serve)).then_some(())
    });
    eprintln!("a stopped serve was replaced {replaced:?} after up noticed");
    // Without SIGCONT the stopped serve would sit on SIGTERM for the whole 10 s grace, then be killed.
    assert!(
        replaced < Duration::from_secs(7),
        "the stopped serve was replaced after {replaced:?}"
    );
    let cloudflared = up.child_pid("cloudflared");
    unsafe_kill(cloudflared, 19);
    let stopping = Instant::now();
    let status = up.stop();
    let took = stopping.elapsed();
    assert!(status.success(), "{status}");
    assert!(!alive(cloudflared));
    eprintln!("up with a stopped cloudflared stopped in {took:?}");
    assert!(took < Duration::from_secs(7), "up took {took:?} to stop");
}

#[test]
fn claude_creates_files_with_the_users_umask_while_ours_stay_private() {
    user_umask();
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[write:made-by-claude.txt]]"}));
    assert_eq!(wait_status(&server, &id, 10)["status"], "succeeded");
    assert_eq!(
        mode(&server.path("project/made-by-claude.txt")),
        0o666 & !USER_UMASK
    );
    assert_eq!(mode(&server.path("data/remote-agent.db")), 0o600);
    assert_eq!(mode(&server.path("data")), 0o700);
}

#[test]
fn through_up_claude_still_gets_the_users_umask() {
    user_umask();
    let up = Up::builder().arg("--no-tunnel").start();
    let body = json!({"message": "[[write:via-up.txt]]"}).to_string();
    let auth = common::basic(common::USER, common::PASSWORD);
    let request = format!(
        "POST /api/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = common::raw_request(up.local(), request.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["success"], true, "{}", resp.text());
    let file = up.root.path().join("project/via-up.txt");
    assert_eq!(mode(&file), 0o666 & !USER_UMASK);
    assert_eq!(mode(&up.root.path().join("state/serve.log")), 0o600);
}

#[test]
fn a_bad_child_umask_is_refused_plainly() {
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--child-umask", "999"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("a umask is octal, 000 to 777"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn the_service_units_set_no_umask_and_the_launchd_log_stays_private() {
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let config = home.path().join(".config/remote-agent/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "[auth]\nusername = \"{}\"\npassword = \"{}\"\n",
            common::USER,
            common::PASSWORD
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::bin())
            .args(args)
            .current_dir(&project)
            .env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AUTH_USERNAME")
            .env_remove("AUTH_PASSWORD")
            .env_remove("REMOTE_AGENT_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for manager in ["systemd", "launchd"] {
        let unit = run(&["service", "print", manager]);
        assert!(
            !unit.to_lowercase().contains("<key>umask</key>")
                && !unit.lines().any(|l| l.starts_with("UMask=")),
            "the {manager} unit sets a umask, which Claude would get instead of the user's:\n{unit}"
        );
    }
    user_umask();
    run(&["service", "install", "--manager", "launchd", "--dry-run"]);
    assert_eq!(
        mode(&home.path().join("Library/Logs/remote-agent.log")),
        0o600
    );
}
