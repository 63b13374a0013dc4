//! `GET /api/claude-sessions`: the CLI's own session files, listed from a fixture tree in a temporary
//! `CLAUDE_CONFIG_DIR` handed to the server: files in 2.1.197's and 2.1.332's shapes, a truncated last line, title
//! lines, sessions outside every project (directly and through a symlink), paging, a file that grows, and a file
//! written by the real CLI against the mock Messages API (skipped without the CLI).

mod common;

use std::io::Write;

use common::Server;
use common::sessions::{
    assistant, new_session, old_session, session_path, ts, user, write_session,
};
use serde_json::{Value, json};

const A: &str = "0a000000-0000-4000-8000-000000000001";
const B: &str = "0b000000-0000-4000-8000-000000000002";
const C: &str = "0c000000-0000-4000-8000-000000000003";
const D: &str = "0d000000-0000-4000-8000-000000000004";
const E: &str = "0e000000-0000-4000-8000-000000000005";
const F: &str = "0f000000-0000-4000-8000-000000000006";
const G: &str = "01000000-0000-4000-8000-000000000007";

fn list(server: &Server, query: &str) -> Value {
    let resp = server.authed("GET", &format!("/api/claude-sessions{query}"), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn ids(v: &Value) -> Vec<String> {
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn find<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {v}"))
}

#[test]
fn the_clis_sessions_inside_the_project_are_listed_newest_first_with_titles_and_paged() {
    let config = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .env("CLAUDE_CONFIG_DIR", config.path().display().to_string())
        .start();
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    let sub = project.join("web");
    std::fs::create_dir(&sub).unwrap();
    let cfg = config.path();

    old_session(cfg, &project, A, 1, "fix the login bug");
    new_session(
        cfg,
        &project,
        B,
        2,
        &[json!({"type": "ai-title", "aiTitle": "Dark mode for the app", "sessionId": B})],
    );
    // A title change: the latest custom title wins over the AI title.
    new_session(
        cfg,
        &sub,
        C,
        4,
        &[
            json!({"type": "custom-title", "customTitle": "first name", "sessionId": C}),
            json!({"type": "ai-title", "aiTitle": "an AI title", "sessionId": C}),
            json!({"type": "custom-title", "customTitle": "renamed", "sessionId": C}),
        ],
    );
    // A truncated last line, as a crash or a write in progress leaves it.
    let d = [
        user(&project, D, 6, json!("write the tests")),
        assistant(&project, D, 7, "writing"),
    ];
    write_session(
        cfg,
        &project,
        D,
        &d,
        r#"{"type":"assistant","timestamp":"2026-11-24T10:59:00.000Z","message":{"con"#,
    );
    // Outside every project: directly, and through a symlink inside the project.
    old_session(cfg, outside.path(), E, 8, "secret elsewhere");
    std::os::unix::fs::symlink(outside.path(), project.join("escape")).unwrap();
    old_session(cfg, &project.join("escape"), F, 9, "through a symlink");
    // Not a session: a stem that is not a UUID, and a file with no cwd.
    write_session(
        cfg,
        &project,
        "notes",
        &[user(&project, "x", 10, json!("no"))],
        "",
    );
    write_session(
        cfg,
        &project,
        G,
        &[json!({"type": "summary", "summary": "no cwd"})],
        "",
    );

    let all = list(&server, "");
    assert_eq!(ids(&all), [D, C, B, A], "{all}");
    assert_eq!(all["next"], Value::Null);

    let a = find(&all, A);
    assert_eq!(a["cwd"], project.to_str().unwrap());
    assert_eq!(a["title"], "fix the login bug");
    assert_eq!(a["messages"], 4);
    assert_eq!(a["messages_exact"], true);
    assert_eq!(a["last_activity"], ts(1));

    let b = find(&all, B);
    assert_eq!(b["title"], "Dark mode for the app");
    // cost-state, the last line, has no timestamp: the last line that has one.
    assert_eq!(b["last_activity"], ts(3));
    assert_eq!(
        b["messages_exact"], false,
        "a 400 KB file is not read whole"
    );
    assert!(b["size"].as_u64().unwrap() > 400_000, "{b}");
    let c = find(&all, C);
    assert_eq!(c["title"], "renamed");
    assert_eq!(c["cwd"], sub.to_str().unwrap());

    let d_listed = find(&all, D);
    assert_eq!(d_listed["title"], "write the tests");
    assert_eq!(
        d_listed["last_activity"],
        ts(7),
        "the cut line's timestamp is not believed"
    );

    // Pages of two, followed to the end, give the same list.
    let mut paged = vec![];
    let mut cursor = String::new();
    for _ in 0..5 {
        let page = list(&server, &format!("?limit=2&cursor={cursor}"));
        assert!(page["sessions"].as_array().unwrap().len() <= 2);
        paged.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(paged, [D, C, B, A]);

    // One project's sessions: a directory inside an allowed project.
    let web = list(&server, &format!("?project={}", sub.display()));
    assert_eq!(ids(&web), [C]);

    // The file grows: the next listing reads it again.
    let d_path = session_path(cfg, &project, D);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&d_path)
        .unwrap();
    writeln!(file, "\n{}", user(&project, D, 30, json!("and more"))).unwrap();
    drop(file);
    // The watcher hears of the append on its own thread, a moment after the write: wait for it, within a deadline.
    common::wait_for("the grown file listed again", 10, || {
        let again = list(&server, "");
        (find(&again, D)["last_activity"] == ts(30)).then_some(())
    });
}

#[test]
fn a_project_outside_the_allowed_ones_bad_paging_and_no_credentials_are_refused() {
    let config = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .env("CLAUDE_CONFIG_DIR", config.path().display().to_string())
        .start();
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    old_session(config.path(), &project, A, 1, "hello");

    let check = |query: &str, status: u16, says: &str| {
        let resp = server.authed("GET", &format!("/api/claude-sessions{query}"), b"");
        assert_eq!(resp.status, status, "{query}: {}", resp.text());
        let error = resp.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(says), "{query}: {error}");
    };
    check("?project=/", 403, "not inside an allowed project");
    check(
        &format!("?project={}/..", project.display()),
        403,
        "not inside an allowed project",
    );
    check("?project=relative/dir", 400, "absolute");
    check("?project=/no/such/dir", 400, "not a directory");
    check("?cursor=garbage", 400, "cursor");
    check("?limit=0", 400, "limit");
    check("?limit=abc", 400, "limit");

    let resp = server.request("GET", "/api/claude-sessions", &[], b"");
    assert_eq!(resp.status, 401);
    let resp = server.authed("POST", "/api/claude-sessions", b"");
    assert_eq!(resp.status, 405);
    assert_eq!(ids(&list(&server, "")), [A]);
}

#[test]
fn without_a_config_dir_the_list_is_empty() {
    let server = Server::start();
    // HOME is the test's empty home: no ~/.claude at all.
    let v = list(&server, "");
    assert_eq!(v, json!({"sessions": [], "next": null}));
}

/// A session file written by the real CLI (against the mock Messages API), listed with its cwd and first prompt.
#[test]
fn a_session_the_real_cli_wrote_is_listed() {
    let Some(claude) = common::real_claude("claude_sessions::real_cli") else {
        return;
    };
    let mock = common::mock_api::MockApi::start();
    let config = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .claude(claude)
        .env("CLAUDE_CONFIG_DIR", config.path().display().to_string())
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .arg("--turn-timeout")
        .arg("60")
        .start();
    let reply = server.chat(&json!({"message": "list me later", "conv_id": "real"}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = reply.json();
    assert_eq!(reply["success"], true, "{reply}\n{}", server.log());
    let session = reply["session_id"].as_str().unwrap().to_string();
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    // The CLI may finish writing its file just after it prints its result.
    let listed = common::wait_for("the session listed", 10, || {
        let listed = list(&server, "");
        ids(&listed).contains(&session).then_some(listed)
    });
    let s = find(&listed, &session);
    assert_eq!(s["cwd"], project.to_str().unwrap(), "{s}");
    assert!(s["messages"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["size"].as_u64().unwrap() > 0);
    // The first prompt, unless the CLI titled the session itself.
    assert!(s["title"].is_string(), "{s}");
}
