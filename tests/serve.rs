//! `remote-agent serve` over loopback with the fake claude: the prototype's API, auth, sessions, turn order,
//! timeouts, the child's argv, stdin and environment, and bad input.

mod common;

use common::{PASSWORD, Server, USER, alive, basic, wait_for};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn ok_chat(server: &Server, body: Value) -> Value {
    let resp = server.chat(&body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

#[test]
fn health_and_index_are_public_and_the_api_is_not() {
    let server = Server::start();
    let health = server.request("GET", "/health", &[], b"");
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json(),
        json!({"status": "healthy", "service": "remote-agent", "version": "0.1.0"})
    );
    let index = server.request("GET", "/", &[], b"");
    assert_eq!(index.status, 200);
    assert!(
        index
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(index.text().contains("remote-agent"));
    for (path, kind) in [
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
        ("/sw.js", "text/javascript"),
        ("/manifest.webmanifest", "application/manifest+json"),
        ("/icon.svg", "image/svg+xml"),
        ("/icon-180.png", "image/png"),
        ("/icon-512.png", "image/png"),
    ] {
        let r = server.request("GET", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
    }
    // Every icon the manifest names is there, of its type; iOS's home-screen icon is a PNG.
    let manifest = server
        .request("GET", "/manifest.webmanifest", &[], b"")
        .json();
    for icon in manifest["icons"].as_array().unwrap() {
        let r = server.request("GET", icon["src"].as_str().unwrap(), &[], b"");
        assert_eq!(r.status, 200, "{icon}");
        assert_eq!(r.header("content-type"), icon["type"].as_str(), "{icon}");
    }
    assert!(
        index
            .text()
            .contains(r#"rel="apple-touch-icon" href="/icon-180.png""#)
    );
    assert_eq!(server.request("GET", "/nope.js", &[], b"").status, 401);

    let none = server.request("GET", "/api/sessions", &[], b"");
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    assert!(none.json()["error"].is_string());
    let wrong = basic(USER, "not-the-password");
    let bad = server.request("GET", "/api/sessions", &[("Authorization", &wrong)], b"");
    assert_eq!(bad.status, 401);
    let wrong_user = basic("someone", PASSWORD);
    let bad = server.request(
        "POST",
        "/api/chat",
        &[("Authorization", &wrong_user)],
        b"{}",
    );
    assert_eq!(bad.status, 401);
    // Our web app gets no WWW-Authenticate, so the browser shows no password dialog.
    let app = server.request(
        "GET",
        "/api/sessions",
        &[("X-Requested-With", "remote-agent")],
        b"",
    );
    assert_eq!(app.status, 401);
    assert!(app.header("www-authenticate").is_none());
    // Unknown paths do not reveal themselves before authentication.
    assert_eq!(server.request("GET", "/api/nothing", &[], b"").status, 401);

    let good = server.authed("GET", "/api/sessions", b"");
    assert_eq!(good.status, 200);
    assert_eq!(good.json(), json!({}));
    assert_eq!(good.header("cache-control"), Some("no-store"));
    // The password never reaches the log, even from failed attempts.
    let log = wait_for("the request log", 10, || {
        let log = server.log();
        log.contains("GET /api/sessions 401").then_some(log)
    });
    assert!(!log.contains(PASSWORD));
}

#[test]
fn a_conversation_keeps_its_session_across_messages_and_restarts() {
    let mut server = Server::start();
    let first = ok_chat(&server, json!({"message": "hello", "conv_id": "work"}));
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(first["response"], "echo[1]: hello");
    assert_eq!(first["cost"], 0.0021);
    assert_eq!(first["turns"], 1);
    assert_eq!(first["error"], Value::Null);
    let session = first["session_id"].as_str().unwrap().to_string();
    assert_eq!(session.len(), 36);

    let second = ok_chat(&server, json!({"message": "again", "conv_id": "work"}));
    assert_eq!(second["response"], "echo[2]: again");
    assert_eq!(second["session_id"], session.as_str());
    // The warm process's cost is cumulative; a turn's own is the difference.
    assert_eq!(second["cost"], 0.0021);

    server.stop(15);
    server.restart();
    let third = ok_chat(
        &server,
        json!({"message": "after restart", "conv_id": "work"}),
    );
    assert_eq!(third["response"], "echo[3]: after restart");
    assert_eq!(third["session_id"], session.as_str());

    // The first process started fresh and took both messages (it stayed warm); the one after the restart
    // resumed the stored session.
    let runs = server.recorded_runs();
    assert_eq!(runs.len(), 2);
    assert!(!runs[0].1.iter().any(|a| a == "--resume"));
    for (_, argv) in &runs[1..] {
        let i = argv.iter().position(|a| a == "--resume").expect("--resume");
        assert_eq!(argv[i + 1], session);
    }

    let sessions = server.authed("GET", "/api/sessions", b"").json();
    let work = &sessions["work"];
    assert_eq!(work["session_id"], session.as_str());
    assert_eq!(work["turn_count"], 3);
    assert_eq!(work["last_message"], "after restart");
    assert!((work["total_cost_usd"].as_f64().unwrap() - 0.0063).abs() < 1e-9);
    assert!(work["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(work["last_message_at"].as_str().unwrap().ends_with('Z'));

    // The default conversation is separate, and reset starts it over.
    let other = ok_chat(&server, json!({"message": "hi"}));
    assert_eq!(other["response"], "echo[1]: hi");
    let reset = server.authed("POST", "/api/reset?conv_id=work", b"");
    assert_eq!(reset.status, 200);
    assert_eq!(
        reset.json(),
        json!({"message": "Conversation reset successfully", "conv_id": "work"})
    );
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert!(sessions.get("work").is_none());
    assert!(sessions.get("default").is_some());
    let fresh = ok_chat(&server, json!({"message": "new start", "conv_id": "work"}));
    assert_eq!(fresh["response"], "echo[1]: new start");
    assert_ne!(fresh["session_id"], session.as_str());
}

#[test]
fn an_explicit_session_id_is_resumed_and_an_unknown_one_fails_cleanly() {
    let server = Server::start();
    let first = ok_chat(&server, json!({"message": "one", "conv_id": "a"}));
    let session = first["session_id"].as_str().unwrap();
    // Another conversation picks up that session, as the prototype allowed.
    let picked = ok_chat(
        &server,
        json!({"message": "two", "conv_id": "b", "session_id": session}),
    );
    assert_eq!(picked["response"], "echo[2]: two");

    let unknown = ok_chat(
        &server,
        json!({"message": "x", "conv_id": "c", "session_id": "00000000-0000-4000-8000-000000000000"}),
    );
    assert_eq!(unknown["success"], false);
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("No conversation found with session ID"),
        "{unknown}"
    );
}

#[test]
fn an_error_result_fails_the_message_and_keeps_the_session() {
    let server = Server::start();
    let first = ok_chat(&server, json!({"message": "one"}));
    let session = first["session_id"].as_str().unwrap().to_string();
    let bad = ok_chat(&server, json!({"message": "boom [[error]]"}));
    assert_eq!(bad["success"], false);
    assert!(
        bad["error"].as_str().unwrap().contains("API Error"),
        "{bad}"
    );
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert_eq!(sessions["default"]["session_id"], session.as_str());
    assert_eq!(sessions["default"]["turn_count"], 2);
}

#[test]
fn tool_calls_thinking_and_unknown_lines_do_not_disturb_the_reply() {
    let server = Server::start();
    let r = ok_chat(
        &server,
        json!({"message": "[[tool]] [[thinking]] [[garbage]] [[retry:2]] go"}),
    );
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["turns"], 2);
    assert!(r["response"].as_str().unwrap().ends_with("go"));
}

#[test]
fn messages_that_look_like_flags_reach_claude_as_text() {
    let server = Server::start();
    for (i, msg) in [
        "--version",
        "--dangerously-skip-permissions",
        "-x",
        "-p --help",
    ]
    .iter()
    .enumerate()
    {
        let r = ok_chat(&server, json!({"message": msg}));
        assert_eq!(r["success"], true, "{msg}: {r}");
        assert_eq!(r["response"], format!("echo[{}]: {msg}", i + 1));
    }
    for (pid, argv) in server.recorded_runs() {
        assert_eq!(server.recorded(&pid, "prompt").first(), Some(&b'-'));
        assert!(
            !argv
                .iter()
                .any(|a| a == "--version" || a == "-x" || a == "--help"),
            "{argv:?}"
        );
    }
}

#[test]
fn huge_and_nul_prompts_arrive_intact_on_stdin() {
    let server = Server::start();
    let big: String = (0..300 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let r = ok_chat(&server, json!({"message": big}));
    assert_eq!(r["success"], true);
    let nul = "before\u{0}after \u{1F980} --flag";
    let r = ok_chat(&server, json!({"message": nul}));
    assert_eq!(r["success"], true);
    // Both went to the conversation's one warm process, each as its own turn.
    let runs = server.recorded_runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(server.recorded(&runs[0].0, "prompt.1"), big.as_bytes());
    assert_eq!(server.recorded(&runs[0].0, "prompt.2"), nul.as_bytes());
    // Nothing of the prompt is on the command line (a 300 KiB argument would not even fit).
    assert!(
        runs.iter()
            .all(|(_, argv)| argv.iter().all(|a| a.len() < 200))
    );
}

#[test]
fn the_child_gets_our_settings_but_not_our_secrets() {
    let server = Server::builder()
        .env("ANTHROPIC_API_KEY", "sk-test-passes")
        .env("CLAUDE_CONFIG_DIR", "/tmp/claude-config-passes")
        .arg("--permission-mode")
        .arg("plan")
        .arg("--allowed-tools")
        .arg("Bash(git *),Edit")
        .start();
    // Resolve symlinks the way the server does for the project dir.
    let project = server.path("project").canonicalize().unwrap();
    let r = ok_chat(&server, json!({"message": "env please"}));
    assert_eq!(r["success"], true);
    let (pid, argv) = server.recorded_runs().pop().unwrap();
    let env: Value = serde_json::from_slice(&server.recorded(&pid, "env.json")).unwrap();
    for secret in [
        "AUTH_PASSWORD",
        "AUTH_USERNAME",
        "CLAUDE_BIN",
        "FAKE_CLAUDE_NOT_SET",
    ] {
        assert!(env.get(secret).is_none(), "{secret} leaked to claude");
    }
    assert_eq!(env["ANTHROPIC_API_KEY"], "sk-test-passes");
    assert_eq!(env["CLAUDE_CONFIG_DIR"], "/tmp/claude-config-passes");
    assert!(env.get("PATH").is_some() && env.get("HOME").is_some());
    assert!(!env.to_string().contains(PASSWORD));
    let cwd = String::from_utf8(server.recorded(&pid, "cwd")).unwrap();
    assert_eq!(cwd.trim(), project.display().to_string());
    for expected in [
        "-p",
        "--verbose",
        "--permission-mode=plan",
        "--allowedTools=Bash(git *)",
        "--allowedTools=Edit",
    ] {
        assert!(
            argv.iter().any(|a| a == expected),
            "{expected} missing from {argv:?}"
        );
    }
}

/// Starts a server whose fake records when each run starts and ends; returns it with the record's reader.
fn timed_server(builder: common::Builder) -> (Server, impl Fn() -> Vec<(u128, u128)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("timing");
    let server = builder
        .env("FAKE_CLAUDE_TIMING", path.display().to_string())
        .start();
    let read = move || {
        let text = std::fs::read_to_string(dir.path().join("timing")).unwrap();
        let mut runs: Vec<(u128, u128)> = text
            .lines()
            .map(|l| {
                let v: Vec<u128> = l.split_whitespace().map(|n| n.parse().unwrap()).collect();
                (v[0], v[1])
            })
            .collect();
        runs.sort();
        runs
    };
    (server, read)
}

#[test]
fn turns_of_one_conversation_run_in_order_and_conversations_in_parallel() {
    let (server, timings) = timed_server(Server::builder());
    let server = std::sync::Arc::new(server);
    let send = |conv: &'static str, msg: &'static str| {
        let s = server.clone();
        std::thread::spawn(move || ok_chat(&s, json!({"message": msg, "conv_id": conv})))
    };
    // One conversation: the second message waits for the first.
    let a = send("same", "first [[slow:0.6]]");
    wait_for("the first run to start", 10, || {
        (server.recorded_runs().len() == 1).then_some(())
    });
    let b = send("same", "second");
    assert_eq!(a.join().unwrap()["response"], "echo[1]: first [[slow:0.6]]");
    assert_eq!(b.join().unwrap()["response"], "echo[2]: second");
    let t = timings();
    assert!(
        t[1].0 >= t[0].1,
        "runs of one conversation overlapped: {t:?}"
    );

    // Two conversations: they run at the same time.
    let c = send("left", "[[slow:0.8]] left");
    let d = send("right", "[[slow:0.8]] right");
    assert_eq!(c.join().unwrap()["success"], true);
    assert_eq!(d.join().unwrap()["success"], true);
    let t = timings();
    let (first, second) = (t[2], t[3]);
    assert!(
        second.0 < first.1,
        "two conversations did not run in parallel: {t:?}"
    );
}

#[test]
fn the_global_cap_queues_turns_of_other_conversations() {
    let (server, timings) = timed_server(Server::builder().arg("--max-concurrent-turns").arg("1"));
    let server = std::sync::Arc::new(server);
    let handles: Vec<_> = ["x", "y"]
        .into_iter()
        .map(|conv| {
            let s = server.clone();
            std::thread::spawn(move || {
                ok_chat(&s, json!({"message": "[[slow:0.5]]", "conv_id": conv}))
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap()["success"], true);
    }
    let t = timings();
    assert!(
        t[1].0 >= t[0].1,
        "the cap of 1 let two turns overlap: {t:?}"
    );
}

#[test]
fn a_timeout_stops_the_whole_turn_and_leaves_no_process() {
    let server = Server::builder().arg("--turn-timeout").arg("1").start();
    // A success printed while it is being stopped does not turn a timeout into a success.
    let r = ok_chat(
        &server,
        json!({"message": "[[slow:60]] [[orphan]] [[success-on-int]]"}),
    );
    assert_eq!(r["success"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("timed out"), "{r}");
    let (pid, _) = server.recorded_runs().pop().unwrap();
    let pid: i32 = pid.parse().unwrap();
    let orphan: i32 = String::from_utf8(server.recorded(&pid.to_string(), "orphan"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The CLI answered the interrupt, so only the turn stopped: what its tool started is gone, and the process
    // alone is left in its group, warm for the next message.
    wait_for("the orphaned tool process to be gone", 10, || {
        (!alive(orphan)).then_some(())
    });
    assert!(alive(pid), "the claude process was stopped with the turn");
    let group = std::process::Command::new("pgrep")
        .arg("-g")
        .arg(pid.to_string())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&group.stdout).trim(),
        pid.to_string(),
        "group {pid} still has other processes"
    );
    let r = ok_chat(&server, json!({"message": "next"}));
    assert_eq!(r["response"], "echo[2]: next", "{r}");
    assert_eq!(server.recorded_runs().len(), 1);

    // A CLI that answers no interrupt and ignores SIGINT and SIGTERM is killed by the last rung of the ladder,
    // with its group.
    let r = ok_chat(&server, json!({"message": "[[slow:60]] [[stubborn]]"}));
    assert!(r["error"].as_str().unwrap().contains("timed out"), "{r}");
    wait_for("the stubborn claude to be gone", 10, || {
        (!alive(pid)).then_some(())
    });
    let group = std::process::Command::new("pgrep")
        .arg("-g")
        .arg(pid.to_string())
        .output()
        .unwrap();
    assert!(group.stdout.is_empty(), "group {pid} still has processes");
}

#[test]
fn a_cli_that_lingers_after_its_result_answers_at_once_and_takes_the_next_turn() {
    let server = Server::start();
    let started = Instant::now();
    let r = ok_chat(&server, json!({"message": "[[linger:3]] stay"}));
    assert_eq!(r["success"], true);
    // The answer came with the result line, not when the CLI was done with the turn.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the answer waited for the linger"
    );
    let (pid, _) = server.recorded_runs().pop().unwrap();
    let pid: i32 = pid.parse().unwrap();
    assert!(alive(pid));
    // The process is not stopped for it: it stays warm and takes the next message once it reads again.
    let r = ok_chat(&server, json!({"message": "next"}));
    assert_eq!(r["response"], "echo[2]: next", "{r}");
    assert_eq!(server.recorded_runs().len(), 1);
    assert!(alive(pid));
}

#[test]
fn shutdown_stops_running_turns_and_exits_cleanly() {
    let mut server = Server::start();
    let addr = server.addr;
    let waiter = std::thread::spawn(move || {
        let body = json!({"message": "[[slow:60]] [[orphan]]"}).to_string();
        let auth = basic(USER, PASSWORD);
        let req = format!(
            "POST /api/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        common::raw_request(addr, req.as_bytes())
    });
    let (pid, orphan) = server.wait_for_orphan();
    let status = server.stop(15);
    assert!(status.success(), "serve exited with {status}");
    let resp = waiter.join().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["success"], false);
    assert!(!alive(pid));
    assert!(!alive(orphan), "the tool process outlived serve");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let server = Server::start();
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("POST", "/api/chat", b"{not json".to_vec(), 400),
        ("POST", "/api/chat", b"{}".to_vec(), 400),
        (
            "POST",
            "/api/chat",
            br#"["hi", "default", null]"#.to_vec(),
            400,
        ),
        ("POST", "/api/chat", br#"{"message": ""}"#.to_vec(), 400),
        ("POST", "/api/chat", br#"{"message": "   "}"#.to_vec(), 400),
        ("POST", "/api/chat", br#"{"message": 42}"#.to_vec(), 400),
        (
            "POST",
            "/api/chat",
            br#"{"message": "hi", "conv_id": "../etc"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/chat",
            br#"{"message": "hi", "conv_id": ""}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/chat",
            format!(r#"{{"message": "hi", "conv_id": "{}"}}"#, "a".repeat(65)).into_bytes(),
            400,
        ),
        (
            "POST",
            "/api/chat",
            br#"{"message": "hi", "session_id": "--version"}"#.to_vec(),
            400,
        ),
        (
            "POST",
            "/api/chat",
            br#"{"message": "hi", "session_id": "not-a-uuid"}"#.to_vec(),
            400,
        ),
        ("POST", "/api/reset?conv_id=a%20b", vec![], 400),
        ("GET", "/api/nothing", vec![], 404),
        ("GET", "/api/chat", vec![], 405),
        ("DELETE", "/api/sessions", vec![], 405),
        ("POST", "/health", vec![], 405),
    ];
    for (method, path, body, status) in cases {
        let resp = server.authed(method, path, &body);
        assert_eq!(
            resp.status,
            status,
            "{method} {path} {:?}: {}",
            String::from_utf8_lossy(&body),
            resp.text()
        );
        assert!(resp.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Malformed JSON and a field of the wrong type are told apart.
    let says = |body: &[u8]| server.authed("POST", "/api/chat", body).json()["error"].to_string();
    assert!(says(b"{not json").contains("invalid JSON"));
    let wrong_type = says(br#"{"message": 42}"#);
    assert!(
        wrong_type.contains("expected a string") && !wrong_type.contains("invalid JSON"),
        "{wrong_type}"
    );
    // Over 1 MiB: 413, whether declared up front or not.
    let big = json!({"message": "x".repeat(1024 * 1024 + 10)}).to_string();
    let resp = server.authed("POST", "/api/chat", big.as_bytes());
    assert_eq!(resp.status, 413);
    assert!(resp.json()["error"].is_string());

    assert_eq!(server.authed("GET", "/api/sessions", b"").json(), json!({}));
    assert!(
        server.recorded_runs().is_empty(),
        "claude ran for bad input"
    );
}

#[test]
fn a_missing_claude_is_a_503_and_the_server_stays_up() {
    let server = Server::builder().claude("/nonexistent/claude").start();
    let resp = server.chat(&json!({"message": "hi"}));
    assert_eq!(resp.status, 503);
    let err = resp.json()["error"].as_str().unwrap().to_string();
    assert!(err.contains("CLAUDE_BIN"), "{err}");
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
    assert_eq!(server.authed("GET", "/api/sessions", b"").json(), json!({}));
}

#[test]
fn serve_without_credentials_exits_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--port", "0"])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env_remove("AUTH_USERNAME")
        .env_remove("AUTH_PASSWORD")
        .env_remove("REMOTE_AGENT_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AUTH_USERNAME") && err.contains("AUTH_PASSWORD"),
        "{err}"
    );
    assert!(err.contains("config.toml"), "{err}");
}

#[test]
fn settings_come_from_dotenv_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[auth]\nusername = \"fileuser\"\npassword = \"filepass\"\n[server]\nhost = \"127.0.0.1\"\n",
    )
    .unwrap();
    // .env (outside the project) sets the port, but never the password (README "Settings").
    std::fs::write(
        dir.path().join(".env"),
        "AUTH_PASSWORD='from dotenv'\nPORT=0\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("project")).unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--project")
        .arg(dir.path().join("project"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("AUTH_USERNAME")
        .env_remove("AUTH_PASSWORD")
        .env_remove("PORT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    let get = |password: &str| {
        let auth = basic("fileuser", password);
        let raw = format!(
            "GET /api/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        );
        common::raw_request(addr, raw.as_bytes()).status
    };
    assert_eq!(get("filepass"), 200);
    assert_eq!(get("from dotenv"), 401);
    let _ = child.kill();
    let _ = child.wait();
    // The data dir was created private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_browser_request_from_another_site_is_refused() {
    let server = Server::start();
    let auth = basic(USER, PASSWORD);
    let body = br#"{"message":"pwned via form","conv_id":"victim"}"#;
    for headers in [
        vec![
            ("Origin", "https://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        vec![("Sec-Fetch-Site", "cross-site")],
    ] {
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend(headers);
        let resp = server.request("POST", "/api/chat", &h, body);
        assert_eq!(resp.status, 403, "{}", resp.text());
        assert!(
            resp.json()["error"]
                .as_str()
                .unwrap()
                .contains("cross-site")
        );
    }
    assert!(
        server.recorded_runs().is_empty(),
        "claude ran for a cross-site request"
    );
    // The same origin, and clients that send no Origin at all, go through.
    let origin = format!("http://{}", server.addr);
    let resp = server.request(
        "POST",
        "/api/chat",
        &[("Authorization", &auth), ("Origin", &origin)],
        br#"{"message":"same site"}"#,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn reset_honours_a_conv_id_in_the_body() {
    let server = Server::start();
    ok_chat(&server, json!({"message": "one", "conv_id": "keep"}));
    ok_chat(&server, json!({"message": "two", "conv_id": "drop"}));
    let resp = server.authed("POST", "/api/reset", br#"{"conv_id":"drop"}"#);
    assert_eq!(resp.json()["conv_id"], "drop");
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert!(sessions.get("drop").is_none() && sessions.get("keep").is_some());
}
