//! Session files in the CLI's own layout and shapes, for the tests that list and adopt them:
//! `<config>/projects/<encoded cwd>/<id>.jsonl`, as 2.1.197 and 2.1.332 write them.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// A fixture's timestamp: minute `minute` of one morning.
pub fn ts(minute: u32) -> String {
    format!("2026-11-24T10:{minute:02}:00.000Z")
}

/// A `user` line of a 2.1.197 session.
pub fn user(cwd: &Path, id: &str, minute: u32, content: Value) -> Value {
    json!({"parentUuid": null, "isSidechain": false, "type": "user", "message": {"role": "user", "content": content},
           "uuid": format!("u{minute}"), "timestamp": ts(minute), "userType": "external", "entrypoint": "cli",
           "cwd": cwd, "sessionId": id, "version": "2.1.197"})
}

/// An `assistant` line with one text block.
pub fn assistant(cwd: &Path, id: &str, minute: u32, text: &str) -> Value {
    json!({"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
           "uuid": format!("a{minute}"), "timestamp": ts(minute), "cwd": cwd, "sessionId": id})
}

/// The file of session `id` of `cwd` under `config`: `projects/<encoded cwd>/<id>.jsonl`, as the CLI names it
/// (paths under 200 characters).
pub fn session_path(config: &Path, cwd: &Path, id: &str) -> PathBuf {
    let folder: String = cwd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    config
        .join("projects")
        .join(folder)
        .join(format!("{id}.jsonl"))
}

/// Writes a session file where the CLI would: `lines`, then `tail` (a cut line, say).
pub fn write_session(config: &Path, cwd: &Path, id: &str, lines: &[Value], tail: &str) {
    let path = session_path(config, cwd, id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.push_str(tail);
    std::fs::write(path, text).unwrap();
}

/// A 2.1.197 session: a queued prompt, a tool call and its result, the last prompt.
pub fn old_session(config: &Path, cwd: &Path, id: &str, minute: u32, prompt: &str) {
    let lines = [
        json!({"type": "queue-operation", "operation": "enqueue", "timestamp": ts(minute), "sessionId": id, "content": prompt}),
        user(cwd, id, minute, json!(prompt)),
        assistant(cwd, id, minute, "looking"),
        user(
            cwd,
            id,
            minute,
            json!([{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]),
        ),
        assistant(cwd, id, minute, "done"),
        json!({"type": "last-prompt", "lastPrompt": prompt, "sessionId": id}),
    ];
    write_session(config, cwd, id, &lines, "");
}

/// A 2.1.332 session of about 400 KB: bookkeeping lines around every message (a request blob whose role is
/// `user`, a meta line, a slash command's lines), an AI title at the end and `cost-state` as the last line.
pub fn new_session(config: &Path, cwd: &Path, id: &str, minute: u32, titles: &[Value]) {
    let blob = "x".repeat(20_000);
    let mut lines = vec![
        json!({"type": "api-request-blob", "message": {"role": "user", "content": "SYSTEM PROMPT BLOB"}, "sessionId": id}),
        user(
            cwd,
            id,
            minute,
            json!("<command-name>/model</command-name>"),
        ),
        json!({"type": "user", "isMeta": true, "message": {"role": "user", "content": "Caveat: meta"}, "cwd": cwd, "timestamp": ts(minute)}),
        user(
            cwd,
            id,
            minute,
            json!([{"type": "text", "text": "add a dark mode"}]),
        ),
    ];
    for i in 0..20 {
        lines.push(json!({"type": "api-request-shape", "shape": {"n": i}, "sessionId": id}));
        lines.push(json!({"type": "api-request-blob", "message": {"role": "user", "content": blob}, "sessionId": id}));
        lines
            .push(json!({"type": "api-request", "requestId": format!("req_{i}"), "sessionId": id}));
        lines.push(assistant(cwd, id, minute, "working"));
        lines.push(json!({"type": "tools-used", "tools": ["Read"], "sessionId": id}));
        lines.push(json!({"type": "atis-latch", "sessionId": id}));
    }
    lines.push(assistant(cwd, id, minute + 1, "all done"));
    lines.extend(titles.iter().cloned());
    lines.push(json!({"type": "cost-state", "total_cost_usd": 0.1, "sessionId": id}));
    write_session(config, cwd, id, &lines, "");
}

/// A 2.1.332-shaped session of `n` exchanges: each a prompt, thinking with a tool call, its result and a reply,
/// with bookkeeping lines around them (a request blob whose role is `user`, cost state, a slash command, a meta
/// line, a subagent's sidechain line), and a cut last line.
pub fn long_session(config: &Path, cwd: &Path, id: &str, n: u32) {
    let mut lines = vec![];
    for i in 0..n {
        let m = i % 60;
        lines.push(json!({"type": "api-request-blob", "message": {"role": "user", "content": "SYSTEM BLOB"}}));
        lines.push(user(
            cwd,
            id,
            m,
            json!("<command-name>/model</command-name>"),
        ));
        lines.push(json!({"type": "user", "isMeta": true, "message": {"role": "user", "content": "Caveat: meta"},
                          "timestamp": ts(m)}));
        lines.push(user(
            cwd,
            id,
            m,
            json!([{"type": "text", "text": format!("prompt {i}")}]),
        ));
        lines.push(json!({"type": "user", "isSidechain": true, "message": {"role": "user", "content": "SIDECHAIN"},
                          "timestamp": ts(m)}));
        lines.push(json!({"type": "assistant", "timestamp": ts(m), "message": {"role": "assistant", "content": [
            {"type": "thinking", "thinking": format!("thinking {i}"), "signature": "sig"},
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Bash", "input": {"command": format!("ls {i}")}},
        ]}}));
        lines.push(json!({"type": "api-request", "requestId": format!("req_{i}")}));
        lines.push(user(
            cwd,
            id,
            m,
            json!([{"type": "tool_result", "tool_use_id": format!("toolu_{i}"),
                                            "content": format!("out {i}"), "is_error": i == 2}]),
        ));
        lines.push(assistant(cwd, id, m, &format!("reply {i}")));
        lines.push(json!({"type": "tools-used", "tools": ["Bash"]}));
        lines.push(json!({"type": "atis-latch"}));
        lines.push(json!({"type": "cost-state", "total_cost_usd": 0.1}));
    }
    write_session(
        config,
        cwd,
        id,
        &lines,
        r#"{"type":"assistant","timestamp":"2026-11-24T10:59:00.000Z","message":{"con"#,
    );
}
