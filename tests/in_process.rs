//! The daemon in process: `serve::run` on a listener bound here to 127.0.0.1:0, with settings for a temp dir and
//! a shutdown this test fires, talked to over HTTP. No binary is spawned, so these start and stop in milliseconds;
//! the fake `claude` (the `fake-claude` example) still runs as a child, through a wrapper that gives it a temp
//! HOME (its sessions go there, not into the real one).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{PASSWORD, Resp, USER, basic, raw_request, wait_for};
use remote_agent::config::{Flags, Settings};
use remote_agent::serve::{Listener, Via};
use serde_json::{Value, json};

/// `serve::run` on its own runtime thread, and the temp dirs it owns: `data/`, `state/`, `project/`, `home/` (the
/// fake's HOME), `record/` (where the fake records what it was given).
struct Daemon {
    addr: SocketAddr,
    root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Daemon {
    fn start() -> Daemon {
        let root = tempfile::tempdir().unwrap();
        let path = |sub: &str| root.path().join(sub);
        for dir in ["state", "project", "home", "record"] {
            std::fs::create_dir(path(dir)).unwrap();
        }
        std::fs::write(
            path("config.toml"),
            format!("[auth]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"),
        )
        .unwrap();
        let claude = path("claude");
        let mut script = std::fs::File::create(&claude).unwrap();
        writeln!(
            script,
            "#!/bin/sh\nHOME='{}' FAKE_CLAUDE_RECORD='{}' exec '{}' \"$@\"",
            path("home").display(),
            path("record").display(),
            common::fake_claude().display()
        )
        .unwrap();
        drop(script);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
        let settings = Settings::load(&Flags {
            config: Some(path("config.toml")),
            host: Some("127.0.0.1".into()),
            port: Some(0),
            data_dir: Some(path("data")),
            state_dir: Some(path("state")),
            project: Some(path("project")),
            claude_bin: Some(claude.display().to_string()),
            ..Flags::default()
        })
        .unwrap();

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let tcp = tokio::net::TcpListener::from_std(listener)?;
                let listeners = vec![Listener {
                    tcp,
                    via: Via::Local,
                    tls: None,
                }];
                remote_agent::serve::run(listeners, settings, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        Daemon {
            addr,
            root,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.root.path().join(sub)
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        common::request_at(self.addr, method, path, headers, body)
    }

    fn chat(&self, body: &Value) -> Resp {
        let auth = basic(USER, PASSWORD);
        self.request(
            "POST",
            "/api/chat",
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// Fires the shutdown and waits for `run` to return what it returns.
    fn stop(&mut self, secs: u64) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        let thread = self.thread.take().unwrap();
        wait_for("serve::run to return", secs, || {
            thread.is_finished().then_some(())
        });
        thread.join().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn health_answers_and_the_database_is_created_private() {
    let mut daemon = Daemon::start();
    let resp = daemon.request("GET", "/health", &[], b"");
    assert_eq!(resp.status, 200);
    let body = resp.json();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "remote-agent");
    assert_eq!(daemon.request("GET", "/api/sessions", &[], b"").status, 401);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(daemon.path("data")), 0o700);
    assert_eq!(mode(daemon.path("data/remote-agent.db")), 0o600);
    daemon.stop(30).unwrap();
}

#[test]
fn a_login_gives_a_cookie_that_opens_the_api() {
    let daemon = Daemon::start();
    let body = json!({"username": USER, "password": PASSWORD}).to_string();
    let login = daemon.request(
        "POST",
        "/api/login",
        &[
            ("Content-Type", "application/json"),
            ("X-Requested-With", "remote-agent"),
        ],
        body.as_bytes(),
    );
    assert_eq!(login.status, 204);
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("ra_session="), "{cookie}");
    let list = daemon.request("GET", "/api/conversations", &[("Cookie", &cookie)], b"");
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["conversations"], json!([]));
    let wrong = json!({"username": USER, "password": "not-the-password"}).to_string();
    let refused = daemon.request(
        "POST",
        "/api/login",
        &[
            ("Content-Type", "application/json"),
            ("X-Requested-With", "remote-agent"),
        ],
        wrong.as_bytes(),
    );
    assert_eq!(refused.status, 401);
}

#[test]
fn a_message_runs_the_fake_claude_and_keeps_its_session() {
    let daemon = Daemon::start();
    let first = daemon.chat(&json!({"message": "hello", "conv_id": "work"}));
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(first["response"], "echo[1]: hello");
    let second = daemon
        .chat(&json!({"message": "again", "conv_id": "work"}))
        .json();
    assert_eq!(second["response"], "echo[2]: again");
    assert_eq!(second["session_id"], first["session_id"]);
    // The fake kept its session under the wrapper's HOME, not this user's.
    assert!(daemon.path("home/.claude/fake-sessions").is_dir());
}

#[test]
fn shutdown_stops_a_running_turn_and_run_returns() {
    let mut daemon = Daemon::start();
    let addr = daemon.addr;
    let waiter = std::thread::spawn(move || {
        let body = json!({"message": "[[slow:60]]"}).to_string();
        let auth = basic(USER, PASSWORD);
        let req = format!(
            "POST /api/chat HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        raw_request(addr, req.as_bytes())
    });
    // The fake records the prompt once it has read it: from then on it is the turn's running child.
    let pid: i32 = wait_for("the fake to start the turn", 20, || {
        std::fs::read_dir(daemon.path("record"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find_map(|name| name.strip_suffix(".prompt")?.parse().ok())
    });
    let started = Instant::now();
    daemon.stop(30).unwrap();
    let resp = waiter.join().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["success"], false);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 60 s turn was stopped, not waited for"
    );
    assert!(!common::alive(pid), "the fake outlived the shutdown");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listener is closed"
    );
}

/// How long the same start, `/health`, stop takes in process and with the binary spawned; prints both.
#[test]
#[ignore = "a measurement: cargo test --test in_process -- --ignored --nocapture"]
fn in_process_against_the_spawned_binary() {
    const ROUNDS: u32 = 5;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let mut daemon = Daemon::start();
        assert_eq!(daemon.request("GET", "/health", &[], b"").status, 200);
        daemon.stop(30).unwrap();
    }
    let in_process = started.elapsed() / ROUNDS;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let mut server = common::Server::start();
        assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
        assert!(server.stop(15).success());
    }
    let spawned = started.elapsed() / ROUNDS;
    println!("start, /health, stop: in process {in_process:?}, spawned binary {spawned:?}");
}
