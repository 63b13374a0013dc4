//! Adopting one of the CLI's own sessions (`POST /api/claude-sessions/{id}/adopt`): one conversation per session,
//! refused outside the allowed projects; its history read from the session file, paged from the end, bookkeeping
//! skipped; its next message resuming the session from the session's cwd (the fake, then the real CLI against the
//! mock Messages API: skipped without the CLI).

mod common;

use std::io::Write;
use std::path::Path;

use common::sessions::{
    assistant, long_session, new_session, old_session, session_path, ts, user, write_session,
};
use common::{Server, wait_for};
use serde_json::{Value, json};

const A: &str = "0a000000-0000-4000-8000-0000000000a1";
const B: &str = "0b000000-0000-4000-8000-0000000000b2";
const C: &str = "0c000000-0000-4000-8000-0000000000c3";
const E: &str = "0e000000-0000-4000-8000-0000000000e5";
const W: &str = "0f000000-0000-4000-8000-0000000000f6";

fn server(config: &Path) -> Server {
    Server::builder()
        .env("CLAUDE_CONFIG_DIR", config.display().to_string())
        .start()
}

fn adopt(server: &Server, id: &str) -> common::Resp {
    server.authed("POST", &format!("/api/claude-sessions/{id}/adopt"), b"")
}

fn history(server: &Server, conv: &str, query: &str) -> Value {
    let resp = server.authed(
        "GET",
        &format!("/api/conversations/{conv}/history{query}"),
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

/// Sends `message` and waits until its turn has ended; returns the turn.
fn run(server: &Server, conv: &str, message: &str) -> Value {
    let turn = server.send(conv, json!({ "message": message }));
    wait_for("the turn to end", 60, || {
        let t = server
            .authed("GET", &format!("/api/turns/{turn}"), b"")
            .json();
        (!matches!(t["status"].as_str(), Some("queued" | "running"))).then_some(t)
    })
}

#[test]
fn a_session_is_adopted_once_and_refused_where_it_should_be() {
    let config = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let server = server(config.path());
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    let cfg = config.path();
    old_session(cfg, &project, A, 1, "fix the login bug");
    new_session(
        cfg,
        &project,
        B,
        2,
        &[json!({"type": "ai-title", "aiTitle": "Dark mode for the app", "sessionId": B})],
    );
    old_session(cfg, outside.path(), E, 3, "secret elsewhere");
    // A session started in a subdirectory of the allowed project: listed, and adopted in that subdirectory.
    let sub = project.join("web");
    std::fs::create_dir_all(&sub).unwrap();
    old_session(cfg, &sub, C, 4, "style the header");

    let made = adopt(&server, A);
    assert_eq!(made.status, 201, "{}", made.text());
    let made = made.json();
    assert_eq!(made["project"], project.to_str().unwrap());
    assert_eq!(made["session_id"], A);
    assert_eq!(made["title"], "fix the login bug");
    let size = std::fs::metadata(session_path(cfg, &project, A))
        .unwrap()
        .len();
    assert_eq!(made["adopted"], json!({"session_id": A, "size": size}));
    let id = made["id"].as_str().unwrap().to_string();

    let again = adopt(&server, A);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["id"], id.as_str());
    let b = adopt(&server, B);
    assert_eq!(b.status, 201);
    let b = b.json();
    assert_eq!(b["title"], "Dark mode for the app");
    let c = adopt(&server, C);
    assert_eq!(c.status, 201, "{}", c.text());
    assert_eq!(c.json()["project"], sub.to_str().unwrap());

    let listed = server.authed("GET", "/api/conversations", b"").json();
    let ids: Vec<&str> = listed["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.iter().filter(|c| **c == id).count(), 1, "{listed}");
    let got = server
        .authed("GET", &format!("/api/conversations/{id}"), b"")
        .json();
    assert_eq!(got["adopted"]["session_id"], A);

    let check = |resp: common::Resp, status: u16, says: &str| {
        assert_eq!(resp.status, status, "{}", resp.text());
        let error = resp.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(says), "{error}");
    };
    check(
        adopt(&server, "0a000000-0000-4000-8000-00000000dead"),
        404,
        "no session",
    );
    check(adopt(&server, "..%2F..%2Fetc"), 404, "no session");
    check(adopt(&server, E), 403, "not an allowed project");
    let resp = server.request("POST", &format!("/api/claude-sessions/{A}/adopt"), &[], b"");
    assert_eq!(resp.status, 401);
    let auth = common::basic(common::USER, common::PASSWORD);
    let foreign = [
        ("Authorization", auth.as_str()),
        ("Origin", "https://elsewhere.example"),
    ];
    let resp = server.request(
        "POST",
        &format!("/api/claude-sessions/{B}/adopt"),
        &foreign,
        b"",
    );
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = server.authed("GET", &format!("/api/claude-sessions/{A}/adopt"), b"");
    assert_eq!(resp.status, 405);

    // Both versions' files give their history: 2.1.197's, a result whose call the fixture never made coming alone;
    // 2.1.332's without its request blobs (role `user`), slash command, meta line, titles and cost state.
    let a_items = history(&server, &id, "")["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        texts(&a_items),
        [
            "user:fix the login bug",
            "assistant:looking",
            "tool:?:ok",
            "assistant:done"
        ]
    );
    assert_eq!(a_items[2]["name"], Value::Null);
    let b_conv = b["id"].as_str().unwrap().to_string();
    let b_items = history(&server, &b_conv, "")["items"]
        .as_array()
        .unwrap()
        .clone();
    let b_texts = texts(&b_items);
    assert_eq!(b_texts.len(), 22, "{b_texts:?}");
    assert_eq!(b_texts[0], "user:add a dark mode");
    assert_eq!(b_texts[21], "assistant:all done");

    // A conversation of our own has no history from a file.
    let ours = server.create(json!({}));
    let resp = server.authed(
        "GET",
        &format!(
            "/api/conversations/{}/history",
            ours["id"].as_str().unwrap()
        ),
        b"",
    );
    check(resp, 404, "not adopted");
    let resp = server.authed("GET", "/api/conversations/nope/history", b"");
    assert_eq!(resp.status, 404);
    assert_eq!(ours["adopted"], Value::Null);
}

/// The texts of a history's items, as `kind:text` (a tool as `tool:name:result`).
fn texts(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i["kind"].as_str().unwrap() {
            "tool" => format!(
                "tool:{}:{}",
                i["name"].as_str().unwrap_or("?"),
                i["result"].as_str().unwrap_or("")
            ),
            k => format!("{k}:{}", i["text"].as_str().unwrap()),
        })
        .collect()
}

#[test]
fn history_comes_from_the_file_paged_from_the_end_without_bookkeeping() {
    let config = tempfile::tempdir().unwrap();
    let server = server(config.path());
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    long_session(config.path(), &project, C, 30);
    let made = adopt(&server, C).json();
    let conv = made["id"].as_str().unwrap().to_string();
    // What the CLI writes after the adoption is not the history's: it ends where the file ended then.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(session_path(config.path(), &project, C))
        .unwrap();
    writeln!(
        file,
        "\n{}",
        user(&project, C, 59, json!("written after adoption"))
    )
    .unwrap();
    drop(file);

    let whole = history(&server, &conv, "?limit=500");
    assert_eq!(whole["before"], Value::Null);
    let items = whole["items"].as_array().unwrap();
    let all = texts(items);
    assert_eq!(all.len(), 30 * 4, "{all:?}");
    assert_eq!(
        all[..4],
        [
            "user:prompt 0",
            "thinking:thinking 0",
            "tool:Bash:out 0",
            "assistant:reply 0"
        ]
    );
    assert_eq!(all.last().unwrap(), "assistant:reply 29");
    for bookkeeping in [
        "SYSTEM BLOB",
        "Caveat",
        "<command-name>",
        "SIDECHAIN",
        "after adoption",
    ] {
        assert!(
            !all.iter().any(|t| t.contains(bookkeeping)),
            "{bookkeeping}: {all:?}"
        );
    }
    let tool = &items[2];
    assert_eq!(tool["input"], json!({"command": "ls 0"}));
    assert_eq!(tool["is_error"], false);
    assert_eq!(items[10]["is_error"], true, "{}", items[10]);
    assert_eq!(items[0]["at"], ts(0));

    // The first page is the end; the walk back reaches the start exactly once, every exchange once.
    let first = history(&server, &conv, "?limit=5");
    let last = texts(first["items"].as_array().unwrap());
    assert_eq!(last.last().unwrap(), "assistant:reply 29");
    let mut walked: Vec<Value> = vec![];
    let mut page = first;
    let mut pages = 1;
    loop {
        let mut items = page["items"].as_array().unwrap().clone();
        items.extend(walked);
        walked = items;
        let Some(before) = page["before"].as_str() else {
            break;
        };
        page = history(&server, &conv, &format!("?limit=5&before={before}"));
        pages += 1;
        assert!(pages < 100, "the walk does not end");
    }
    assert!(pages >= 24, "{pages} pages");
    let walked_texts = texts(&walked);
    for i in 0..30 {
        for want in [
            format!("user:prompt {i}"),
            format!("assistant:reply {i}"),
            format!("thinking:thinking {i}"),
        ] {
            assert_eq!(
                walked_texts.iter().filter(|t| **t == want).count(),
                1,
                "{want}: {walked_texts:?}"
            );
        }
        let out = format!("out {i}");
        assert_eq!(
            walked
                .iter()
                .filter(|t| t["result"] == out.as_str())
                .count(),
            1,
            "{out}"
        );
    }
    let prompts: Vec<&String> = walked_texts
        .iter()
        .filter(|t| t.starts_with("user:"))
        .collect();
    let in_order: Vec<String> = (0..30).map(|i| format!("user:prompt {i}")).collect();
    assert_eq!(prompts, in_order.iter().collect::<Vec<_>>());

    for bad in ["?before=abc", "?before=99999999999", "?limit=0", "?limit=x"] {
        let resp = server.authed(
            "GET",
            &format!("/api/conversations/{conv}/history{bad}"),
            b"",
        );
        assert_eq!(resp.status, 400, "{bad}: {}", resp.text());
    }
}

#[test]
fn the_next_message_resumes_the_session_from_its_own_directory() {
    let config = tempfile::tempdir().unwrap();
    let server = server(config.path());
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    old_session(config.path(), &project, A, 1, "fix the login bug");
    let conv = adopt(&server, A).json()["id"].as_str().unwrap().to_string();
    let turn = run(&server, &conv, "carry on");
    assert_eq!(turn["status"], "succeeded", "{turn}\n{}", server.log());
    assert_eq!(turn["response"], "echo[1]: carry on");
    assert_eq!(turn["session_id"], A);
    let (pid, argv) = server.recorded_runs().pop().unwrap();
    let at = argv.iter().position(|a| a == "--resume").expect("--resume");
    assert_eq!(argv[at + 1], A);
    let cwd = String::from_utf8(server.recorded(&pid, "cwd")).unwrap();
    assert_eq!(cwd.trim(), project.to_str().unwrap());
    // The turns after the adoption are ours, after the file's history.
    let got = server
        .authed("GET", &format!("/api/conversations/{conv}"), b"")
        .json();
    assert_eq!(got["messages"][0]["text"], "carry on");
    let turn = run(&server, &conv, "and again");
    assert_eq!(turn["response"], "echo[2]: and again");

    // A session file in another directory's folder, claiming this cwd: the CLI (and the fake) finds no session
    // there from this cwd, and the turn says so.
    let mut lines = vec![user(&project, W, 1, json!("misfiled"))];
    lines.push(assistant(&project, W, 1, "ok"));
    write_session(config.path(), Path::new("/somewhere/else"), W, &lines, "");
    let conv = adopt(&server, W).json()["id"].as_str().unwrap().to_string();
    let turn = run(&server, &conv, "carry on");
    assert_eq!(turn["status"], "failed", "{turn}");
    let error = turn["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("No conversation found with session ID: {W}")),
        "{turn}"
    );
}

/// The real CLI writes a session in the project against the mock; adopted, its next message resumes it: the mock
/// sees the earlier prompt in the resumed request's messages.
#[test]
fn a_session_the_real_cli_wrote_is_resumed_with_its_history() {
    let Some(claude) = common::real_claude("adopt::real_cli") else {
        return;
    };
    let mock = common::mock_api::MockApi::start();
    let config = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .claude(&claude)
        .env("CLAUDE_CONFIG_DIR", config.path().display().to_string())
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .arg("--turn-timeout")
        .arg("60")
        .start();
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    // At the desk: the CLI run by hand in the project.
    let out = std::process::Command::new(&claude)
        .args(["-p", "--output-format", "json", "remember the desk prompt"])
        .current_dir(&project)
        .env("HOME", server.path("home"))
        .env("CLAUDE_CONFIG_DIR", config.path())
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let session = result["session_id"].as_str().unwrap().to_string();

    let made = wait_for("the session to be adoptable", 10, || {
        let resp = adopt(&server, &session);
        (resp.status == 201).then(|| resp.json())
    });
    let conv = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["project"], project.to_str().unwrap());
    let items = history(&server, &conv, "")["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        texts(&items).contains(&"user:remember the desk prompt".to_string()),
        "{items:?}"
    );

    let turn = run(&server, &conv, "and now from the phone");
    assert_eq!(turn["status"], "succeeded", "{turn}\n{}", server.log());
    assert_eq!(turn["session_id"], session.as_str());
    let resumed = mock
        .requests()
        .into_iter()
        .filter(|r| r.to_string().contains("and now from the phone"))
        .find(|r| r.to_string().contains("remember the desk prompt"));
    assert!(resumed.is_some(), "{:?}", mock.requests());
}
