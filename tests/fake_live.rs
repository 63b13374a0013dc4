//! The fake `claude`'s long-lived mode (`--input-format stream-json --permission-prompt-tool stdio`): one
//! process, many turns, control requests both ways. Each test drives the built fake through its stdin and
//! reads its stdout line by line.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(5);

/// A running fake in the long-lived mode.
struct Fake {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
}

impl Fake {
    fn start(dir: &Path, extra: &[&str]) -> Fake {
        let mut child = Command::new(common::fake_claude())
            .args([
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-prompt-tool",
                "stdio",
            ])
            .args(extra)
            .current_dir(dir)
            .env("CLAUDE_CONFIG_DIR", dir.join("config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the fake");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).expect("a JSON line");
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Fake {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    fn user(&mut self, text: &str) {
        self.send(
            json!({"type": "user", "message": {"role": "user", "content": text},
            "parent_tool_use_id": null, "session_id": ""}),
        );
    }

    fn control(&mut self, id: &str, request: Value) {
        self.send(json!({"type": "control_request", "request_id": id, "request": request}));
    }

    /// Answers our pending `can_use_tool` `request` with `response`.
    fn answer(&mut self, request: &Value, response: Value) {
        self.send(json!({"type": "control_response", "response": {
            "subtype": "success", "request_id": request["request_id"], "response": response,
        }}));
    }

    /// The lines up to and including the first that satisfies `done`.
    fn until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no {what} ({e}); saw {seen:#?}"));
            let last = done(&line);
            seen.push(line);
            if last {
                return seen;
            }
        }
    }

    /// The lines of a turn, up to its `result` (the last item).
    fn turn(&self) -> Vec<Value> {
        self.until("result", |l| l["type"] == "result")
    }

    /// The next `can_use_tool` request.
    fn asked(&self) -> Value {
        let lines = self.until("can_use_tool", |l| {
            l["type"] == "control_request" && l["request"]["subtype"] == "can_use_tool"
        });
        lines.last().unwrap().clone()
    }

    /// Closes stdin and waits for the exit code.
    fn close(mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the fake did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `tool_result` blocks among `lines`.
fn tool_results(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "user")
        .flat_map(|l| l["message"]["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_result")
        .collect()
}

fn result(lines: &[Value]) -> &Value {
    lines
        .last()
        .filter(|l| l["type"] == "result")
        .expect("a result")
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn turns_share_one_process_and_add_up_cost_then_eof_exits_0() {
    let dir = dir();
    let mut fake = Fake::start(dir.path(), &[]);
    fake.control("init-1", json!({"subtype": "initialize", "hooks": null}));
    let init = fake.until("initialize answer", |l| l["type"] == "control_response");
    let init = &init.last().unwrap()["response"];
    assert_eq!(init["subtype"], "success");
    assert_eq!(init["request_id"], "init-1");
    assert_eq!(init["response"]["pid"], fake.child.id());
    fake.control("x-1", json!({"subtype": "bogus"}));
    let error = fake.until("error answer", |l| l["type"] == "control_response");
    assert_eq!(
        error.last().unwrap()["response"],
        json!({"subtype": "error", "request_id": "x-1", "error": "Unknown request subtype: bogus"})
    );

    fake.user("one");
    let first = fake.turn();
    fake.user("two");
    let second = fake.turn();
    for (lines, n, cost) in [(&first, 1, 0.0021), (&second, 2, 0.0042)] {
        assert_eq!(lines[0]["subtype"], "init", "{lines:#?}");
        let result = result(lines);
        assert_eq!(result["subtype"], "success");
        assert_eq!(
            result["result"],
            format!("echo[{n}]: {}", ["one", "two"][n - 1])
        );
        assert!((result["total_cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
        assert!(result.get("result_index").is_none());
    }
    assert_eq!(first[0]["session_id"], second[0]["session_id"]);
    assert_eq!(fake.close(), 0);
}

#[test]
fn interrupt_stops_a_slow_turn_and_the_next_one_runs() {
    let dir = dir();
    let mut fake = Fake::start(dir.path(), &[]);
    fake.user("[[slow:30]]");
    fake.until("init", |l| l["subtype"] == "init");
    let asked = Instant::now();
    fake.control("stop-1", json!({"subtype": "interrupt"}));
    let lines = fake.turn();
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "control_response" && l["response"]["request_id"] == "stop-1")
    );
    let result = result(&lines);
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["terminal_reason"], "aborted_tools");
    fake.user("after");
    let result = fake.turn().pop().unwrap();
    assert_eq!(result["result"], "echo[2]: after");
    assert_eq!(fake.close(), 0);
}

#[test]
fn bash_allow_runs_the_command_and_an_allow_without_input_does_not() {
    let dir = dir();
    let mut fake = Fake::start(dir.path(), &[]);
    fake.user("make it [[bash:touch made.txt]]");
    let ask = fake.asked();
    let request = &ask["request"];
    assert_eq!(request["tool_name"], "Bash");
    assert_eq!(
        request["input"],
        json!({"command": "touch made.txt", "description": "touch"})
    );
    assert_eq!(
        request["blocked_path"],
        format!("{}/made.txt", dir.path().display())
    );
    assert_eq!(request["permission_suggestions"][0]["type"], "addRules");
    fake.answer(
        &ask,
        json!({"behavior": "allow", "updatedInput": request["input"]}),
    );
    let lines = fake.turn();
    assert_eq!(tool_results(&lines)[0]["is_error"], false);
    assert!(dir.path().join("made.txt").exists());
    assert_eq!(result(&lines)["subtype"], "success");

    fake.user("[[bash:touch not-made.txt]]");
    let ask = fake.asked();
    fake.answer(&ask, json!({"behavior": "allow"}));
    let lines = fake.turn();
    let tool = tool_results(&lines)[0];
    assert_eq!(tool["is_error"], true);
    assert_eq!(
        tool["content"],
        "Tool permission request failed: ZodError: updatedInput required"
    );
    assert!(!dir.path().join("not-made.txt").exists());
    assert_eq!(fake.close(), 0);
}

#[test]
fn bash_deny_goes_on_and_deny_with_interrupt_stops() {
    let dir = dir();
    let mut fake = Fake::start(dir.path(), &[]);
    fake.user("[[bash:touch denied.txt]]");
    let ask = fake.asked();
    fake.answer(&ask, json!({"behavior": "deny", "message": "not today"}));
    let lines = fake.turn();
    let tool = tool_results(&lines)[0];
    assert_eq!(
        (tool["is_error"].clone(), tool["content"].clone()),
        (json!(true), json!("not today"))
    );
    let result = result(&lines);
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["result"], "echo[1]: [[bash:touch denied.txt]]");
    let denials = result["permission_denials"].as_array().unwrap();
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0]["tool_name"], "Bash");
    assert_eq!(denials[0]["tool_use_id"], ask["request"]["tool_use_id"]);
    assert_eq!(denials[0]["tool_input"]["command"], "touch denied.txt");
    assert!(!dir.path().join("denied.txt").exists());

    fake.user("[[bash:touch stopped.txt]]");
    let ask = fake.asked();
    fake.answer(
        &ask,
        json!({"behavior": "deny", "message": "stop", "interrupt": true}),
    );
    let result = fake.turn().pop().unwrap();
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["terminal_reason"], "aborted_tools");

    // An interrupt while asking abandons the request: a late answer is ignored.
    fake.user("[[bash:touch late.txt]]");
    let ask = fake.asked();
    fake.control("stop-2", json!({"subtype": "interrupt"}));
    assert_eq!(
        fake.turn().pop().unwrap()["terminal_reason"],
        "aborted_tools"
    );
    fake.answer(
        &ask,
        json!({"behavior": "allow", "updatedInput": ask["request"]["input"]}),
    );
    fake.user("fine");
    assert_eq!(fake.turn().pop().unwrap()["result"], "echo[4]: fine");
    assert!(!dir.path().join("late.txt").exists());
    assert_eq!(fake.close(), 0);
}

#[test]
fn an_always_rule_is_kept_and_written_to_local_settings() {
    let dir = dir();
    let mut fake = Fake::start(dir.path(), &[]);
    fake.user("[[bash:touch again.txt]]");
    let ask = fake.asked();
    let rule = ask["request"]["permission_suggestions"][0].clone();
    fake.answer(
        &ask,
        json!({"behavior": "allow", "updatedInput": ask["request"]["input"],
               "updatedPermissions": [rule]}),
    );
    fake.turn();
    let settings: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(".claude/settings.local.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        settings["permissions"]["allow"],
        json!(["Bash(touch again.txt)"])
    );
    fake.user("[[bash:touch again.txt]]");
    let lines = fake.turn();
    assert!(!lines.iter().any(|l| l["type"] == "control_request"));
    assert_eq!(tool_results(&lines)[0]["is_error"], false);
    assert_eq!(fake.close(), 0);

    // A new process reads the rule from the settings file; --allowedTools rules work as well.
    let mut fake = Fake::start(dir.path(), &["--allowedTools", "Bash(mkdir *)"]);
    fake.user("[[bash:touch again.txt]] [[bash:mkdir sub]]");
    let lines = fake.turn();
    assert!(!lines.iter().any(|l| l["type"] == "control_request"));
    assert!(dir.path().join("sub").is_dir());
    assert_eq!(fake.close(), 0);
}

#[test]
fn question_answers_make_the_tool_result() {
    let dir = dir();
    let mut fake = Fake::start(dir.path(), &[]);
    fake.user("[[question]]");
    let ask = fake.asked();
    assert_eq!(ask["request"]["tool_name"], "AskUserQuestion");
    let mut input = ask["request"]["input"].clone();
    input["answers"] = json!({"Which database should we use?": "SQLite",
                              "Which checks should run?": "Unit tests, Lint"});
    fake.answer(&ask, json!({"behavior": "allow", "updatedInput": input}));
    let lines = fake.turn();
    assert_eq!(
        tool_results(&lines)[0]["content"],
        "Your questions have been answered: \"Which database should we use?\"=\"SQLite\", \
         \"Which checks should run?\"=\"Unit tests, Lint\". You can now continue with these answers in mind."
    );
    assert_eq!(fake.close(), 0);
}

#[test]
fn plan_approval_leaves_plan_mode() {
    let dir = dir();
    let mut fake = Fake::start(dir.path(), &["--permission-mode", "plan"]);
    fake.user("[[plan]]");
    let ask = fake.asked();
    assert_eq!(ask["request"]["tool_name"], "ExitPlanMode");
    fake.answer(
        &ask,
        json!({"behavior": "allow", "updatedInput": ask["request"]["input"]}),
    );
    let lines = fake.turn();
    assert_eq!(
        tool_results(&lines)[0]["content"],
        "User has approved your plan. You can now start coding."
    );
    fake.user("[[plan]]");
    let lines = fake.turn();
    assert_eq!(lines[0]["permissionMode"], "default");
    assert_eq!(tool_results(&lines)[0]["is_error"], true); // not in plan mode any more: no asking
    assert_eq!(fake.close(), 0);
}

#[test]
fn a_withdrawn_request_is_cancelled_and_denied() {
    let dir = dir();
    let mut fake = Fake::start(dir.path(), &[]);
    fake.user("[[bash:touch w.txt]] [[withdraw]]");
    let ask = fake.asked();
    let lines = fake.turn();
    let cancel = lines
        .iter()
        .find(|l| l["type"] == "control_cancel_request")
        .expect("a cancel");
    assert_eq!(cancel["request_id"], ask["request_id"]);
    assert_eq!(tool_results(&lines)[0]["content"], "withdrawn");
    assert_eq!(
        result(&lines)["permission_denials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(!dir.path().join("w.txt").exists());
    assert_eq!(fake.close(), 0);
}
