//! The real Claude Code CLI behind `remote-agent serve`, talking to a mock Messages API on loopback
//! (docs/architecture.md, "Tests"). Skipped with a visible message when the CLI is absent; required under `CI=true`.

mod common;

use common::Server;
use common::mock_api::MockApi;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::Command;

fn server_with_real_cli(test: &str, mock: &MockApi) -> Option<Server> {
    let claude = common::real_claude(test)?;
    Some(
        Server::builder()
            .claude(claude)
            .env("ANTHROPIC_BASE_URL", mock.base_url())
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .arg("--turn-timeout")
            .arg("60")
            .start(),
    )
}

/// The process group of a process, while it runs.
fn group_of(pid: i32) -> Option<i32> {
    nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
        .ok()
        .map(|g| g.as_raw())
}

/// The user texts the mock saw in a request's history, in order.
fn user_texts(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .flat_map(|m| match &m["content"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str().map(String::from))
                .collect(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn a_message_gets_the_models_reply_and_the_next_one_resumes_the_session() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::resume", &mock) else {
        return;
    };
    let first = server.chat(&json!({"message": "hello real cli", "conv_id": "real"}));
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    assert_eq!(first["success"], true, "{first}\n{}", server.log());
    assert_eq!(first["response"], "mock reply: hello real cli");
    assert!(first["turns"].as_i64().unwrap() >= 1);
    let session = first["session_id"].as_str().unwrap().to_string();

    let second = server
        .chat(&json!({"message": "and again", "conv_id": "real"}))
        .json();
    assert_eq!(second["success"], true, "{second}");
    assert_eq!(second["response"], "mock reply: and again");
    assert_eq!(second["session_id"], session.as_str());
    // The model saw the first exchange: the CLI resumed the session.
    let last = mock.requests().pop().unwrap();
    let texts = user_texts(&last);
    assert!(
        texts.iter().any(|t| t.contains("hello real cli")),
        "history lacks the first message: {texts:?}"
    );
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert_eq!(sessions["real"]["turn_count"], 2);
}

#[test]
fn a_message_that_looks_like_a_flag_reaches_the_model_as_text() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::flag", &mock) else {
        return;
    };
    let r = server.chat(&json!({"message": "--version"})).json();
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["response"], "mock reply: --version");
}

#[test]
fn a_tool_call_runs_in_the_project_dir() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::tool", &mock) else {
        return;
    };
    // New conversations ask before a tool writes (`default`); the prototype's setting is one away: with
    // acceptEdits the default allow-list lets git, and its output into a file, run through Bash without asking.
    let created = server.authed(
        "POST",
        "/api/conversations",
        br#"{"id":"t","permission_mode":"acceptEdits"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = server.send(
        "t",
        json!({"message": "RUN_BASH: git --version > git-version.txt"}),
    );
    common::SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]).rest();
    let r = server
        .authed("GET", &format!("/api/turns/{id}"), b"")
        .json();
    assert_eq!(r["status"], "succeeded", "{r}");
    // The mock's final reply quotes the tool's result (this command prints nothing).
    assert!(
        r["response"].as_str().unwrap().starts_with("Tool ran fine"),
        "{r}"
    );
    let written = server.path("project").join("git-version.txt");
    assert!(
        common::file_contains(&written, "git version"),
        "the tool did not run in the project dir"
    );
}

#[test]
fn the_reply_streams_as_deltas_then_the_result() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::stream", &mock) else {
        return;
    };
    let created = server.authed("POST", "/api/conversations", br#"{"id":"s"}"#);
    assert_eq!(created.status, 201);
    let id = server.send("s", json!({ "message": "stream this please" }));
    let mut stream =
        common::SseStream::open(&server, "POST", &format!("/api/turns/{id}/events"), &[]);
    let events = stream.rest();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(&kinds[..2], ["status", "status"], "{kinds:?}");
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["message", "result", "done"],
        "{kinds:?}"
    );
    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "text_delta")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert!(deltas.len() > 1, "the reply came in one piece: {kinds:?}");
    assert_eq!(deltas.concat(), "mock reply: stream this please");
    assert_eq!(events.last().unwrap().data, json!({"status": "succeeded"}));
    // The replay after the end is the same stream.
    let mut replay =
        common::SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    assert_eq!(replay.rest(), events);
}

#[test]
fn cancel_during_a_bash_tool_leaves_no_process() {
    let mock = MockApi::start();
    let Some(claude) = common::real_claude("real_cli::cancel") else {
        return;
    };
    let server = Server::builder()
        .claude(claude)
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .arg("--allowed-tools")
        .arg("Bash(python3 *)")
        .start();
    assert_eq!(
        server
            .authed("POST", "/api/conversations", br#"{"id":"k"}"#)
            .status,
        201
    );
    // A Python sleep: 2.1.332's Bash tool refuses a standalone `sleep N`.
    let command = "python3 -c 'import time; time.sleep(60)'";
    let id = server.send("k", json!({ "message": format!("RUN_BASH: {command}") }));
    let marker = "REMOTE_AGENT_CONVERSATION_ID=k".to_string();
    let mut stream =
        common::SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    while let Some(e) = stream.next() {
        if e.event == "tool_use" {
            assert_eq!(e.data["input"]["command"], command);
            break;
        }
        if e.event == "tool_result" {
            panic!("the tool ended early: {}", e.data);
        }
    }
    // The tool's shell and its sleep run in their own session, outside claude's process group.
    let sleeper = common::wait_for("the sleep to run", 20, || {
        common::pids_with_env(&marker).into_iter().find(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                // argv[0] may be a full path (a pyenv shim, /usr/bin/python3); the tool's bash also holds the
                // text, so look for the interpreter itself.
                let argv0 = c.split('\0').next().unwrap_or("");
                argv0
                    .rsplit('/')
                    .next()
                    .is_some_and(|b| b.starts_with("python3"))
                    && c.contains("time.sleep(60)")
            })
        })
    });
    let started = std::time::Instant::now();
    let cancel = server.authed("POST", &format!("/api/turns/{id}/cancel"), b"");
    assert_eq!(cancel.status, 202);
    let rest = stream.rest();
    assert_eq!(rest.last().unwrap().data, json!({"status": "cancelled"}));
    assert!(
        started.elapsed().as_secs() < 10,
        "cancel took {:?}",
        started.elapsed()
    );
    // The CLI answered the interrupt, so only the turn stopped: the tool's processes are gone, and what is left
    // of the conversation is claude itself (its own process group), warm for the next message.
    common::wait_for("the tool's processes to be gone", 10, || {
        (!common::alive(sleeper)).then_some(())
    });
    // The tool's shell led a group of its own, killed with the sleeper but reaped a moment later: wait for one
    // group to be left, claude's.
    let claude = common::wait_for("only claude's group to be left", 10, || {
        let left = common::pids_with_env(&marker);
        let leaders: Vec<i32> = left
            .iter()
            .copied()
            .filter(|&pid| group_of(pid) == Some(pid))
            .collect();
        (leaders.len() == 1 && left.iter().all(|&pid| group_of(pid) == Some(leaders[0])))
            .then_some(leaders)
    });
    let turn = server
        .authed("GET", &format!("/api/turns/{id}"), b"")
        .json();
    assert_eq!(turn["status"], "cancelled");
    // The next message is answered from the same process.
    let next = server.send("k", json!({ "message": "after the cancel" }));
    let rest =
        common::SseStream::open(&server, "GET", &format!("/api/turns/{next}/events"), &[]).rest();
    assert_eq!(
        rest.last().unwrap().data,
        json!({"status": "succeeded"}),
        "{rest:?}"
    );
    let turn = server
        .authed("GET", &format!("/api/turns/{next}"), b"")
        .json();
    assert_eq!(turn["response"], "mock reply: after the cancel", "{turn}");
    assert!(common::alive(claude[0]));
    assert_eq!(
        common::pids_with_env(&marker)
            .into_iter()
            .filter(|&pid| group_of(pid) == Some(pid))
            .collect::<Vec<_>>(),
        claude,
        "another claude took the next message"
    );
}

#[test]
fn the_real_cli_dies_with_a_killed_serve() {
    let mock = MockApi::start();
    let Some(mut server) = server_with_real_cli("real_cli::pdeathsig", &mock) else {
        return;
    };
    server.create(json!({"id": "d"}));
    // The mock never answers: the CLI sits waiting on the API when serve is killed.
    server.send("d", json!({"message": "HANG"}));
    let marker = "REMOTE_AGENT_CONVERSATION_ID=d";
    common::wait_for("the API request", 20, || {
        (!mock.requests().is_empty()).then_some(())
    });
    let claude = common::pids_with_env(marker);
    assert!(!claude.is_empty(), "no claude process for the conversation");
    server.stop(9);
    common::wait_for("claude to die with serve", 10, || {
        claude.iter().all(|&pid| !common::alive(pid)).then_some(())
    });
}

#[test]
fn the_real_cli_creates_files_with_the_users_umask() {
    // The umask serve starts with (the one a user's shell would give it), not ours (0077).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
    let mock = MockApi::start();
    let Some(claude) = common::real_claude("real_cli::umask") else {
        return;
    };
    let server = Server::builder()
        .claude(claude)
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .arg("--allowed-tools")
        .arg("Bash(touch *)")
        .start();
    let r = server
        .chat(&json!({"message": "RUN_BASH: touch made-by-claude.txt"}))
        .json();
    assert_eq!(r["success"], true, "{r}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(server.path("project/made-by-claude.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
}

/// Without credentials (an empty HOME, no key) the real CLI answers "Not logged in · Please run /login" as a
/// result with `is_error`: the turn fails with the error that says what to run on the computer, and its kind.
#[test]
fn a_cli_that_is_not_logged_in_fails_the_turn_with_that_kind() {
    if std::env::var_os("ANTHROPIC_API_KEY").is_some() {
        common::skip("real_cli::not_logged_in", "ANTHROPIC_API_KEY is set here");
        return;
    }
    let Some(claude) = common::real_claude("real_cli::not_logged_in") else {
        return;
    };
    let server = Server::builder()
        .claude(claude)
        // Nowhere to go, should the CLI try.
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "hello"}));
    let turn: Value = common::wait_for("the turn to end", 60, || {
        let t = server
            .authed("GET", &format!("/api/turns/{id}"), b"")
            .json();
        (t["status"] != "queued" && t["status"] != "running").then_some(t)
    });
    assert_eq!(turn["status"], "failed", "{turn}\n{}", server.log());
    assert_eq!(turn["error_kind"], "not_logged_in", "{turn}");
    assert!(turn["error"].as_str().unwrap().contains("/login"), "{turn}");
}

/// What a program shows on a terminal until `want` appears or `secs` pass, with escape sequences and whitespace
/// removed (a terminal UI moves the cursor over spaces); answers the cursor-position queries it asks at start.
/// The program is killed at the end.
fn on_a_terminal(mut cmd: Command, want: &str, secs: u64) -> String {
    use std::io::{Read, Write};
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let mut master = std::fs::File::from(pty.master);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let escapes = |b: &[u8]| {
        let mut out = String::new();
        let text = String::from_utf8_lossy(b);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\u{1b}' {
                out.push(c);
                continue;
            }
            // CSI: ESC [ params final; OSC: ESC ] ... BEL; anything else: the next char.
            match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() || c == '~' {
                            break;
                        }
                    }
                }
                Some(']') => for _ in chars.by_ref().take_while(|c| *c != '\u{7}') {},
                _ => {}
            }
        }
        out.retain(|c| !c.is_whitespace());
        out
    };
    let want: String = want.chars().filter(|c| !c.is_whitespace()).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        let Ok(chunk) = rx.recv_timeout(std::time::Duration::from_millis(200)) else {
            continue;
        };
        if chunk.windows(4).any(|w| w == b"\x1b[6n") {
            let _ = master.write_all(b"\x1b[1;1R");
        }
        seen.extend_from_slice(&chunk);
        if escapes(&seen).contains(&want) {
            break;
        }
    }
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    escapes(&seen)
}

/// The CLI hides the sessions whose file says an SDK made them (`"entrypoint":"sdk-cli"`) from its `--resume`
/// picker; ours record another entrypoint, so a session started from the phone is there in the terminal.
#[test]
fn a_session_the_server_started_is_in_the_terminals_resume_picker() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::picker", &mock) else {
        return;
    };
    let r = server
        .chat(&json!({"message": "picker title from the phone", "conv_id": "desk"}))
        .json();
    assert_eq!(r["success"], true, "{r}\n{}", server.log());
    let session = r["session_id"].as_str().unwrap().to_string();
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    let file = std::fs::read_dir(server.path("home/.claude/projects"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join(format!("{session}.jsonl")))
        .find(|p| p.is_file())
        .expect("the session's file");
    // The CLI writes the transcript a moment after it answers.
    let first: Value = common::wait_for("the session's messages on disk", 30, || {
        let text = std::fs::read_to_string(&file).ok()?;
        let line = text.lines().find(|l| l.contains("\"entrypoint\""))?;
        serde_json::from_str(line).ok()
    });
    assert_eq!(first["entrypoint"], remote_agent::claude::ENTRYPOINT);

    // The terminal at the desk: the same HOME, onboarding done, the key and the project accepted.
    let cwd = project.to_str().unwrap();
    let config = json!({
        "hasCompletedOnboarding": true,
        "theme": "dark",
        "customApiKeyResponses": {"approved": ["test-key"], "rejected": []},
        "projects": {cwd: {"hasTrustDialogAccepted": true}},
    });
    std::fs::write(server.path("home/.claude.json"), config.to_string()).unwrap();
    let picker = |want: &str| {
        let mut cmd = Command::new(common::real_claude("real_cli::picker").unwrap());
        cmd.arg("--resume")
            .current_dir(&project)
            .env("HOME", server.path("home"))
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("CLAUDE_CODE_ENTRYPOINT")
            .env("ANTHROPIC_BASE_URL", mock.base_url())
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("TERM", "xterm-256color");
        on_a_terminal(cmd, want, 60)
    };
    // The mock names every session so; the picker shows that title.
    let title = "Mocksessiontitle";
    let screen = picker(title);
    assert!(
        screen.contains(title),
        "the picker does not list our session:\n{screen}"
    );

    // The control: the same file as an SDK's is hidden (what the CLI did to ours before).
    let text = std::fs::read_to_string(&file).unwrap();
    let marked = format!("\"entrypoint\":\"{}\"", remote_agent::claude::ENTRYPOINT);
    std::fs::write(&file, text.replace(&marked, "\"entrypoint\":\"sdk-cli\"")).unwrap();
    // Both versions end the picker's screen with this hint, listed sessions or none.
    let screen = picker("Ctrl+A to show all projects");
    assert!(screen.contains("Ctrl+Atoshowallprojects"), "{screen}");
    assert!(
        !screen.contains(title),
        "an sdk-cli session is listed:\n{screen}"
    );
}

/// The review of what a turn changed, from the real CLI's own tool calls: in a git repository (the trees before and
/// after) and outside one (what the tool calls themselves say, in this version's event shapes).
#[test]
fn what_the_real_cli_changed_is_listed_with_its_diff() {
    let mock = MockApi::start();
    let Some(server) = server_with_real_cli("real_cli::changes", &mock) else {
        return;
    };
    let project = server.path("project");
    let inside_git = Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .current_dir(&project)
        .output()
        .is_ok_and(|o| o.status.success());
    // Outside git first (when the temp dir allows), then the same project as a repository.
    let mut kinds = vec![];
    if !inside_git {
        kinds.push(false);
    }
    if Command::new("git").arg("--version").output().is_ok() {
        kinds.push(true);
    }
    for (n, git) in kinds.into_iter().enumerate() {
        if git {
            for args in [
                &["init", "-q"][..],
                &[
                    "-c",
                    "user.email=t@example.com",
                    "-c",
                    "user.name=t",
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    "0",
                ],
            ] {
                assert!(
                    Command::new("git")
                        .args(args)
                        .current_dir(&project)
                        .status()
                        .unwrap()
                        .success()
                );
            }
        }
        let conv = format!("c{n}");
        server.create(json!({"id": conv, "permission_mode": "acceptEdits"}));
        let path = project.join(format!("notes{n}.md"));
        let input = json!({"file_path": path, "content": "# Notes\nline two\n"});
        let turn = server.send(
            &conv,
            json!({"message": format!("RUN_TOOL: Write {input}")}),
        );
        common::SseStream::open(&server, "GET", &format!("/api/turns/{turn}/events"), &[]).rest();
        assert!(
            common::file_contains(&path, "line two"),
            "the Write did not run"
        );

        let set = common::wait_for("the turn's changes", 30, || {
            let v = server
                .authed("GET", &format!("/api/turns/{turn}/changes"), b"")
                .json();
            (v["pending"] == false).then_some(v)
        });
        assert_eq!(set["git"], git, "{set}");
        let name = format!("notes{n}.md");
        let files = set["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{set}");
        let f = &files[0];
        assert_eq!(
            (&f["path"], &f["status"], &f["added"], &f["by"]),
            (&json!(name), &json!("added"), &json!(2), &json!("claude")),
            "{set}"
        );
        let d = server
            .authed("GET", &format!("/api/turns/{turn}/changes/{name}"), b"")
            .json();
        let lines: Vec<&str> = d["diff"].as_str().unwrap().lines().collect();
        assert_eq!(
            lines,
            [
                "--- /dev/null",
                &format!("+++ b/{name}"),
                "@@ -0,0 +1,2 @@",
                "+# Notes",
                "+line two"
            ],
            "{d}"
        );
    }
}
