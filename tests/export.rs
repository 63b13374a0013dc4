//! Exporting a conversation as Markdown or JSON: a text turn, a tool call whose output holds ``` fences, a failed
//! turn; the downloads' headers; 404, 400 and 401.

mod common;

use common::{Server, wait_for};
use serde_json::{Value, json};

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
fn a_conversation_exports_as_markdown_and_json() {
    let server = Server::start();
    // A file whose text would close a three- or four-backtick fence.
    let tricky = "# notes\n```\nrm -rf /\n````\nafter the fence\n";
    std::fs::write(server.path("project/fenced.md"), tricky).unwrap();
    server.create(json!({"id": "ex", "title": "Fix: the \"build\" / deploy?"}));
    let first = run(&server, "ex", "hello there");
    assert_eq!(first["status"], "succeeded");
    let second = run(&server, "ex", "[[bash:cat fenced.md]] show me");
    assert_eq!(second["status"], "succeeded", "{second}");
    let third = run(&server, "ex", "[[error]] again");
    assert_eq!(third["status"], "failed", "{third}");

    let md = server.authed("GET", "/api/conversations/ex/export?format=markdown", b"");
    assert_eq!(md.status, 200, "{}", md.text());
    assert_eq!(
        md.header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
    assert_eq!(
        md.header("content-disposition"),
        Some("attachment; filename=\"Fix-the-build-deploy.md\"")
    );
    let text = md.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# Fix: the \"build\" / deploy?", "{text}");
    assert!(lines.iter().any(|l| l.starts_with("- Project: `")));
    assert!(lines.iter().any(|l| l.starts_with("- Created: ")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("- Turns: 3 · Total cost: $"))
    );
    let turns: Vec<&&str> = lines.iter().filter(|l| l.starts_with("## Turn ")).collect();
    assert_eq!(turns.len(), 3, "{text}");
    assert!(turns[0].starts_with("## Turn 1 · "));
    // The first turn: the message in a fence, then the reply.
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("no line {needle:?} in:\n{text}"))
    };
    let you = at("**You:**");
    assert_eq!(&lines[you + 2..you + 5], ["```text", "hello there", "```"]);
    let claude = at("**Claude:**");
    assert_eq!(lines[claude + 2], "echo[1]: hello there");
    // The tool call: its input as JSON, its output in a fence longer than the four backticks inside it, so the
    // file's own fences stay inside the block.
    let call = at("**Tool call: Bash**");
    assert_eq!(lines[call + 2], "```json");
    assert!(
        lines[call + 3..call + 6]
            .iter()
            .any(|l| l.contains("\"command\": \"cat fenced.md\""))
    );
    let result = at("**Tool result:**");
    assert_eq!(lines[result + 2], "`````text");
    assert_eq!(
        &lines[result + 3..result + 9],
        [
            "# notes",
            "```",
            "rm -rf /",
            "````",
            "after the fence",
            "`````"
        ]
    );
    // Each turn's outcome; the failed one with its error.
    let statuses: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("*Status: "))
        .collect();
    assert_eq!(statuses.len(), 3);
    assert!(
        statuses[0].starts_with("*Status: succeeded · cost $"),
        "{}",
        statuses[0]
    );
    assert!(
        statuses[2].starts_with("*Status: failed"),
        "{}",
        statuses[2]
    );
    let error = at("**Error:**");
    assert_eq!(lines[error + 2], "```text");
    assert!(lines[error + 3].contains("API Error"), "{text}");

    let js = server.authed("GET", "/api/conversations/ex/export?format=json", b"");
    assert_eq!(js.status, 200);
    assert_eq!(js.header("content-type"), Some("application/json"));
    assert_eq!(
        js.header("content-disposition"),
        Some("attachment; filename=\"Fix-the-build-deploy.json\"")
    );
    let body = js.json();
    assert_eq!(body["conversation"]["id"], "ex");
    assert_eq!(
        body["conversation"]["title"],
        "Fix: the \"build\" / deploy?"
    );
    let turns = body["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[0]["prompt"], "hello there");
    assert_eq!(turns[0]["status"], "succeeded");
    assert_eq!(turns[0]["response"], "echo[1]: hello there");
    assert!(turns[0]["cost"].as_f64().unwrap() > 0.0);
    assert_eq!(turns[0]["events"][0]["type"], "assistant");
    let events = turns[1]["events"].as_array().unwrap();
    let tool = events.iter().find(|e| e["type"] == "tool_use").unwrap();
    assert_eq!(tool["name"], "Bash");
    assert_eq!(tool["input"]["command"], "cat fenced.md");
    let out = events.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert!(
        out["content"].to_string().contains("after the fence"),
        "{out}"
    );
    assert_eq!(turns[2]["status"], "failed");
    assert!(turns[2]["error"].as_str().unwrap().contains("API Error"));
    assert!(turns[2].get("error_kind").is_some());
}

#[test]
fn an_export_is_refused_where_it_should_be() {
    let server = Server::start();
    server.create(json!({"id": "e2"}));
    let missing = server.authed("GET", "/api/conversations/nope/export?format=json", b"");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
    let bad = server.authed("GET", "/api/conversations/e2/export?format=pdf", b"");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "format must be markdown or json");
    let anonymous = server.request("GET", "/api/conversations/e2/export?format=json", &[], b"");
    assert_eq!(anonymous.status, 401);
    // Without a title the file is named after the conversation; an empty one is still a document.
    let md = server.authed("GET", "/api/conversations/e2/export", b"");
    assert_eq!(md.status, 200);
    assert_eq!(
        md.header("content-disposition"),
        Some("attachment; filename=\"conversation-e2.md\"")
    );
    assert_eq!(md.text().lines().next(), Some("# Conversation e2"));
    let js = server.authed("GET", "/api/conversations/e2/export?format=json", b"");
    assert_eq!(js.json()["turns"], json!([]));
    // Read from the store a page at a time: more turns than a page, all there, in order.
    for n in 1..=23 {
        let turn = server.send("e2", json!({ "message": format!("m{n}") }));
        if n == 23 {
            wait_for("the last turn to end", 60, || {
                let t = server
                    .authed("GET", &format!("/api/turns/{turn}"), b"")
                    .json();
                (t["status"] == "succeeded").then_some(())
            });
        }
    }
    let js = server.authed("GET", "/api/conversations/e2/export?format=json", b"");
    let prompts: Vec<String> = js.json()["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["prompt"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        prompts,
        (1..=23).map(|n| format!("m{n}")).collect::<Vec<_>>()
    );
    let md = server
        .authed("GET", "/api/conversations/e2/export", b"")
        .text();
    assert!(md.contains("\n## Turn 23 · "), "{md}");
    assert!(md.contains("echo[23]: m23"), "{md}");
}
