//! Approvals, questions and plans through the daemon with the REAL Claude Code CLI (docs/api.md, "Requests"):
//! `remote-agent serve` runs each conversation on one long-lived CLI process, the CLI talks to the mock Messages
//! API (tests/common/mock_api.rs), and the test answers what Claude asks through `POST /api/requests/{id}`, reading
//! the turn's events as a phone would. Skipped with a message when no real CLI is configured
//! (`REMOTE_AGENT_REAL_CLAUDE`), required under `CI=true`; run against 2.1.197 and 2.1.332.
//!
//! Every wait has a deadline. Each test gives its conversations unique ids, so the processes of a conversation
//! are the ones whose environment carries `REMOTE_AGENT_CONVERSATION_ID=<id>`; each ends by stopping the server
//! and checking that none of them is left.

mod common;

use std::time::{Duration, Instant};

use common::mock_api::{MockApi, QUESTION_CHECKS, QUESTION_DB};
use common::{Resp, Server, Sse, SseStream};
use serde_json::{Value, json};

/// Upper bound for a turn against the instant mock (the CLI's cold start included).
const TURN_SECS: f64 = 60.0;

/// A server with the real CLI against its own mock, and the conversations the test made.
struct Fixture {
    server: Server,
    mock: MockApi,
    convs: Vec<String>,
    stopped: bool,
}

impl Fixture {
    /// `None` (skipped) when no real CLI is configured. `args` go to `serve`.
    fn start(test: &str, args: &[&str]) -> Option<Fixture> {
        let claude = common::real_claude(&format!("real_approvals::{test}"))?;
        let mock = MockApi::start();
        let mut builder = Server::builder()
            .claude(claude)
            .env("ANTHROPIC_BASE_URL", mock.base_url())
            .env("ANTHROPIC_API_KEY", "test-key")
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .arg("--turn-timeout")
            .arg("120");
        for a in args {
            builder = builder.arg(a);
        }
        Some(Fixture {
            server: builder.start(),
            mock,
            convs: Vec::new(),
            stopped: false,
        })
    }

    /// Marks the project as trusted in the CLI's config (`~/.claude.json` of the HOME serve gives it), as opening
    /// it once in Claude Code and accepting the dialog does: 2.1.197 ignores the rules an "always" writes to
    /// `.claude/settings.local.json` in an untrusted project. Before the conversation's first message.
    fn trust_project(&self) {
        let project = self.project();
        let cwd = project.canonicalize().unwrap();
        let trust = json!({"projects": {cwd.to_str().unwrap(): {"hasTrustDialogAccepted": true}}});
        std::fs::write(self.server.path("home/.claude.json"), trust.to_string()).unwrap();
    }

    fn project(&self) -> std::path::PathBuf {
        self.server.path("project")
    }

    /// Creates a conversation with a unique id and this permission mode; returns its id.
    fn conversation(&mut self, mode: &str) -> String {
        let id = format!("c{}", uuid::Uuid::new_v4().simple());
        let created = self
            .server
            .create(json!({"id": id, "permission_mode": mode}));
        assert_eq!(created["permission_mode"], mode, "{created}");
        self.convs.push(id.clone());
        id
    }

    /// Sends a message; returns the turn id and a live subscriber to its events.
    fn send(&self, conv: &str, message: &str) -> (String, SseStream) {
        let turn = self.server.send(conv, json!({ "message": message }));
        let stream = self.events(&turn, None);
        (turn, stream)
    }

    /// Subscribes to a turn's events (after event `after`, when given).
    fn events(&self, turn: &str, after: Option<u64>) -> SseStream {
        let path = match after {
            Some(n) => format!("/api/turns/{turn}/events?after={n}"),
            None => format!("/api/turns/{turn}/events"),
        };
        let stream = SseStream::open(&self.server, "POST", &path, &[]);
        assert_eq!(stream.status, 200, "events of {turn}");
        stream
    }

    /// `POST /api/requests/{id}`.
    fn answer(&self, id: &str, body: Value) -> Resp {
        self.server.authed(
            "POST",
            &format!("/api/requests/{id}"),
            body.to_string().as_bytes(),
        )
    }

    fn pending(&self) -> Vec<Value> {
        let r = self.server.authed("GET", "/api/requests", b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["requests"].as_array().unwrap().clone()
    }

    fn turn(&self, id: &str) -> Value {
        self.server
            .authed("GET", &format!("/api/turns/{id}"), b"")
            .json()
    }

    /// The conversation as `GET /api/conversations` lists it.
    fn listed(&self, conv: &str) -> Value {
        let all = self.server.authed("GET", "/api/conversations", b"").json();
        all["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == conv)
            .cloned()
            .unwrap_or_else(|| panic!("{conv} is not listed: {all}"))
    }

    /// The pid of the conversation's claude process (serve's child that carries its marker).
    fn claude_pid(&self, conv: &str) -> i32 {
        let marker = format!("REMOTE_AGENT_CONVERSATION_ID={conv}");
        let serve = self.server.pid();
        common::wait_for("the conversation's claude process", 30, || {
            common::pids_with_env(&marker)
                .into_iter()
                .find(|&p| parent(p) == Some(serve))
        })
    }

    /// Every live process of the conversation: claude and whatever its tools started.
    fn processes(&self, conv: &str) -> Vec<i32> {
        common::pids_with_env(&format!("REMOTE_AGENT_CONVERSATION_ID={conv}"))
    }

    fn log(&self) -> String {
        self.server.log()
    }

    /// Stops serve (SIGTERM, as a service manager does) and checks that no process of the test's conversations
    /// is left.
    fn close(mut self) {
        self.stop();
    }

    /// Stops serve with SIGTERM and waits until no process of the test's conversations is left.
    fn stop(&mut self) {
        self.stop_with(15);
    }

    /// Stops serve with this signal and waits until no process of the test's conversations is left.
    fn stop_with(&mut self, signal: i32) {
        self.server.stop(signal);
        self.stopped = true;
        for conv in &self.convs {
            let marker = format!("REMOTE_AGENT_CONVERSATION_ID={conv}");
            common::wait_for("the conversation's processes to be gone", 15, || {
                common::pids_with_env(&marker).is_empty().then_some(())
            });
        }
    }

    /// Starts serve again on the same data dir and settings.
    fn restart(&mut self) {
        self.server.restart();
        self.stopped = false;
    }

    /// Whether any request the mock got holds this text.
    fn mock_saw(&self, text: &str) -> bool {
        self.mock
            .requests()
            .iter()
            .any(|r| r["messages"].to_string().contains(text))
    }
}

impl Drop for Fixture {
    /// A failed test still leaves nothing behind: whatever carries its conversations' markers is killed.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        for conv in &self.convs {
            for pid in common::pids_with_env(&format!("REMOTE_AGENT_CONVERSATION_ID={conv}")) {
                common::unsafe_kill(pid, 9);
            }
        }
    }
}

/// A process's parent pid.
fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The next event that is not a keepalive, within `secs`; None once the stream ended.
fn next_event(stream: &mut SseStream, secs: f64) -> Option<Sse> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs_f64();
        assert!(left > 0.0, "no event within {secs} s");
        match stream.next_within(left) {
            Some(e) if e.event == "keepalive" => continue,
            Some(e) => return Some(e),
            None if stream.ended => return None,
            None => {}
        }
    }
}

/// Reads events until the turn's `request` (returned with everything read before it); panics if the turn ends
/// first.
fn until_request(stream: &mut SseStream, log: impl Fn() -> String) -> (Sse, Vec<Sse>) {
    let mut seen = Vec::new();
    loop {
        let Some(e) = next_event(stream, TURN_SECS) else {
            panic!("the stream ended without a request: {seen:#?}\n{}", log());
        };
        match e.event.as_str() {
            "request" => return (e, seen),
            "done" => panic!("the turn ended without a request: {seen:#?}\n{}", log()),
            _ => seen.push(e),
        }
    }
}

/// Reads the rest of a turn's events, up to `done`.
fn rest(stream: &mut SseStream) -> Vec<Sse> {
    let mut out = Vec::new();
    while let Some(e) = next_event(stream, TURN_SECS) {
        let done = e.event == "done";
        out.push(e);
        if done {
            return out;
        }
    }
    out
}

fn status(events: &[Sse]) -> &Value {
    &events.last().expect("events").data["status"]
}

fn of_kind<'a>(events: &'a [Sse], kind: &str) -> Vec<&'a Sse> {
    events.iter().filter(|e| e.event == kind).collect()
}

/// The text of the turn's `tool_result` events (their JSON, so a string or blocks alike).
fn tool_results(events: &[Sse]) -> String {
    of_kind(events, "tool_result")
        .iter()
        .map(|e| e.data.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One whole turn that asks nothing; returns its events.
fn plain_turn(fx: &Fixture, conv: &str, message: &str) -> Vec<Sse> {
    let (_, mut stream) = fx.send(conv, message);
    let mut events = Vec::new();
    while let Some(e) = next_event(&mut stream, TURN_SECS) {
        assert_ne!(e.event, "request", "it asked: {e:?}\n{events:#?}");
        let done = e.event == "done";
        events.push(e);
        if done {
            break;
        }
    }
    events
}

#[test]
fn a_bash_tool_asks_and_runs_once_allowed() {
    let Some(mut fx) = Fixture::start("allow", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (turn, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    let r = &request.data;
    assert_eq!(r["state"], "pending", "{r}");
    assert_eq!(r["kind"], "tool", "{r}");
    assert_eq!(r["tool_name"], "Bash", "{r}");
    assert_eq!(r["input"]["command"], "touch made.txt", "{r}");
    assert_eq!(r["conversation_id"], conv.as_str(), "{r}");
    assert_eq!(r["turn_id"], turn.as_str(), "{r}");
    assert!(
        r["suggestions"].as_array().is_some_and(|s| !s.is_empty()),
        "{r}"
    );
    // Listed, and the conversation waits.
    let pending = fx.pending();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0], *r);
    assert_eq!(fx.listed(&conv)["waiting"], 1);
    assert!(!fx.project().join("made.txt").exists());

    let id = r["id"].as_str().unwrap();
    let answered = fx.answer(id, json!({"decision": "allow"}));
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(
        answered.json(),
        json!({"id": id, "state": "answered", "decision": "allow"})
    );
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    let ended = of_kind(&events, "request_ended");
    assert_eq!(ended.len(), 1, "{events:#?}");
    assert_eq!(
        ended[0].data,
        json!({"id": id, "state": "answered", "decision": "allow"})
    );
    assert!(fx.project().join("made.txt").exists(), "{events:#?}");
    assert!(fx.pending().is_empty());
    assert_eq!(fx.listed(&conv)["waiting"], 0);
    assert_eq!(fx.turn(&turn)["status"], "succeeded");
    // Answered once: a second answer is refused.
    assert_eq!(fx.answer(id, json!({"decision": "allow"})).status, 409);
    fx.close();
}

#[test]
fn a_denied_tool_does_not_run_and_the_turn_goes_on() {
    let Some(mut fx) = Fixture::start("deny", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (turn, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    let id = request.data["id"].as_str().unwrap();
    let answered = fx.answer(id, json!({"decision": "deny", "message": "Not this time."}));
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(answered.json()["decision"], "deny");
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    let results = of_kind(&events, "tool_result");
    assert_eq!(results.len(), 1, "{events:#?}");
    assert_eq!(results[0].data["is_error"], true, "{events:#?}");
    // Claude went on and saw why: the mock's reply quotes the tool result.
    let response = fx.turn(&turn)["response"].as_str().unwrap().to_string();
    assert!(
        response.starts_with("Tool ran fine") && response.contains("Not this time."),
        "{response}"
    );
    assert!(!fx.project().join("made.txt").exists());
    fx.close();
}

#[test]
fn deny_and_stop_ends_the_turn_and_the_next_message_runs_on_the_same_process() {
    let Some(mut fx) = Fixture::start("deny_and_stop", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (turn, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    let pid = fx.claude_pid(&conv);
    let id = request.data["id"].as_str().unwrap();
    let answered = fx.answer(id, json!({"decision": "deny_and_stop"}));
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(answered.json()["decision"], "deny_and_stop");
    let events = rest(&mut stream);
    // The person asked for the stop: the turn ends as a stop does (`cancelled`), never as a failure quoting the
    // CLI's own diagnostic of its `error_during_execution` result.
    assert_eq!(status(&events), "cancelled", "{events:#?}\n{}", fx.log());
    assert!(
        !events
            .iter()
            .any(|e| e.data.to_string().contains("ede_diagnostic")),
        "{events:#?}"
    );
    let turn = fx.turn(&turn);
    assert_eq!(turn["status"], "cancelled", "{turn}");
    assert!(!fx.project().join("made.txt").exists());
    assert_eq!(
        of_kind(&events, "request_ended")[0].data["decision"],
        "deny_and_stop"
    );

    // The process stayed warm: the next message runs on it.
    let next = plain_turn(&fx, &conv, "still there?");
    assert_eq!(status(&next), "succeeded", "{next:#?}\n{}", fx.log());
    let text: String = of_kind(&next, "text_delta")
        .iter()
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "mock reply: still there?");
    assert_eq!(
        fx.claude_pid(&conv),
        pid,
        "the next message started another claude process\n{}",
        fx.log()
    );
    fx.close();
}

#[test]
fn allow_with_an_edited_input_runs_the_edit() {
    let Some(mut fx) = Fixture::start("edited", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (_, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    let id = request.data["id"].as_str().unwrap();
    let answered = fx.answer(
        id,
        json!({"decision": "allow", "input": {"command": "touch edited.txt", "description": "run"}}),
    );
    assert_eq!(answered.status, 200, "{}", answered.text());
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    assert!(fx.project().join("edited.txt").exists(), "{events:#?}");
    assert!(!fx.project().join("made.txt").exists());
    fx.close();
}

#[test]
fn allow_always_adds_the_rule_and_the_same_command_does_not_ask_again() {
    let Some(mut fx) = Fixture::start("allow_always", &[]) else {
        return;
    };
    fx.trust_project();
    let conv = fx.conversation("default");
    let (_, mut stream) = fx.send(&conv, "RUN_BASH: touch again.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    let suggestion = request.data["suggestions"][0].clone();
    assert!(suggestion.is_object(), "{}", request.data);
    let id = request.data["id"].as_str().unwrap();
    let answered = fx.answer(id, json!({"decision": "allow_always", "suggestion": 0}));
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(answered.json()["decision"], "allow_always");
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    assert!(fx.project().join("again.txt").exists(), "{events:#?}");
    std::fs::remove_file(fx.project().join("again.txt")).unwrap();

    // The identical call runs without asking.
    let next = plain_turn(&fx, &conv, "RUN_BASH: touch again.txt");
    assert_eq!(status(&next), "succeeded", "{next:#?}\n{}", fx.log());
    assert!(
        fx.project().join("again.txt").exists(),
        "suggestion 0 was {suggestion}: {next:#?}"
    );
    fx.close();
}

#[test]
fn answers_to_questions_reach_the_tool_result() {
    let Some(mut fx) = Fixture::start("questions", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (turn, mut stream) = fx.send(&conv, "ASK_QUESTIONS");
    let (request, _) = until_request(&mut stream, || fx.log());
    let r = &request.data;
    assert_eq!(r["kind"], "question", "{r}");
    assert_eq!(r["tool_name"], "AskUserQuestion", "{r}");
    assert_eq!(r["input"]["questions"][0]["question"], QUESTION_DB, "{r}");
    assert_eq!(r["input"]["questions"][1]["multiSelect"], true, "{r}");
    let id = r["id"].as_str().unwrap();
    let answered = fx.answer(
        id,
        json!({"decision": "allow", "answers": {QUESTION_DB: "SQLite", QUESTION_CHECKS: "Unit tests, Lint"}}),
    );
    assert_eq!(answered.status, 200, "{}", answered.text());
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    let results = tool_results(&events);
    assert!(
        results.contains("SQLite") && results.contains("Unit tests, Lint"),
        "{events:#?}"
    );
    let response = fx.turn(&turn)["response"].as_str().unwrap().to_string();
    assert!(
        response.starts_with("Tool ran fine") && response.contains("SQLite"),
        "{response}"
    );
    fx.close();
}

#[test]
fn a_plan_is_approved_and_the_turn_succeeds() {
    let Some(mut fx) = Fixture::start("plan_approve", &[]) else {
        return;
    };
    let conv = fx.conversation("plan");
    let (_, mut stream) = fx.send(&conv, "EXIT_PLAN");
    let (request, before) = until_request(&mut stream, || fx.log());
    assert_eq!(request.data["kind"], "plan", "{}", request.data);
    assert_eq!(request.data["tool_name"], "ExitPlanMode");
    // The phone can show the plan: in the request's input (2.1.197), or in the tool_use the request names (2.1.332
    // strips `plan` from the input it asks about).
    let tool_use = before
        .iter()
        .find(|e| e.event == "tool_use" && e.data["id"] == request.data["tool_use_id"]);
    let plan = request.data["input"]["plan"]
        .as_str()
        .or_else(|| tool_use.and_then(|e| e.data["input"]["plan"].as_str()));
    assert_eq!(
        plan,
        Some(common::mock_api::EXIT_PLAN_TEXT),
        "{}\n{before:#?}",
        request.data
    );
    let id = request.data["id"].as_str().unwrap();
    let answered = fx.answer(id, json!({"decision": "allow"}));
    assert_eq!(answered.status, 200, "{}", answered.text());
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    let results = of_kind(&events, "tool_result");
    assert_eq!(results.len(), 1, "{events:#?}");
    assert_eq!(results[0].data["is_error"], false, "{events:#?}");
    fx.close();
}

#[test]
fn keep_planning_gives_claude_the_note() {
    let Some(mut fx) = Fixture::start("plan_keep", &[]) else {
        return;
    };
    let conv = fx.conversation("plan");
    let (turn, mut stream) = fx.send(&conv, "EXIT_PLAN");
    let (request, _) = until_request(&mut stream, || fx.log());
    assert_eq!(request.data["kind"], "plan", "{}", request.data);
    let id = request.data["id"].as_str().unwrap();
    let note = "Also plan the tests.";
    let answered = fx.answer(id, json!({"decision": "deny", "message": note}));
    assert_eq!(answered.status, 200, "{}", answered.text());
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    assert!(tool_results(&events).contains(note), "{events:#?}");
    let response = fx.turn(&turn)["response"].as_str().unwrap().to_string();
    assert!(response.contains(note), "{response}");
    fx.close();
}

#[test]
fn an_interrupt_during_a_running_tool_stops_it_and_the_process_stays_warm() {
    let Some(mut fx) = Fixture::start("interrupt", &["--allowed-tools", "Bash(python3 *)"]) else {
        return;
    };
    let conv = fx.conversation("acceptEdits");
    // A Python sleep: 2.1.332's Bash tool refuses a standalone `sleep N`.
    let (turn, mut stream) = fx.send(&conv, "RUN_BASH: python3 -c 'import time; time.sleep(45)'");
    let mut seen = Vec::new();
    loop {
        let e = next_event(&mut stream, TURN_SECS).expect("the turn's events");
        assert!(
            !matches!(e.event.as_str(), "request" | "tool_result" | "done"),
            "{e:?} before the tool ran: {seen:#?}"
        );
        let tool = e.event == "tool_use";
        seen.push(e);
        if tool {
            break;
        }
    }
    let pid = fx.claude_pid(&conv);
    let sleeper = common::wait_for("the python sleep to run", 30, || {
        fx.processes(&conv).into_iter().find(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                let argv0 = c.split('\0').next().unwrap_or("");
                argv0
                    .rsplit('/')
                    .next()
                    .is_some_and(|b| b.starts_with("python3"))
                    && c.contains("time.sleep(45)")
            })
        })
    });
    let started = Instant::now();
    let cancel = fx
        .server
        .authed("POST", &format!("/api/turns/{turn}/cancel"), b"");
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    let events = rest(&mut stream);
    assert_eq!(status(&events), "cancelled", "{events:#?}\n{}", fx.log());
    common::wait_for("the python sleep to be gone", 10, || {
        (!common::alive(sleeper)).then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the interrupt took {:?}",
        started.elapsed()
    );
    assert_eq!(fx.turn(&turn)["status"], "cancelled");
    assert!(common::alive(pid), "claude did not stay warm");

    let next = plain_turn(&fx, &conv, "after the interrupt");
    assert_eq!(status(&next), "succeeded", "{next:#?}\n{}", fx.log());
    let text: String = of_kind(&next, "text_delta")
        .iter()
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "mock reply: after the interrupt");
    assert_eq!(
        fx.claude_pid(&conv),
        pid,
        "the next message started another claude process\n{}",
        fx.log()
    );
    fx.close();
}

#[test]
fn the_same_request_answered_twice_at_once_is_answered_once() {
    let Some(mut fx) = Fixture::start("twice", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (_, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    let id = request.data["id"].as_str().unwrap().to_string();
    let barrier = std::sync::Barrier::new(2);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let answers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    fx.answer(&id, json!({"decision": "allow"})).status
                })
            })
            .collect();
        answers.into_iter().map(|a| a.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [200, 409], "{statuses:?}");
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    // One answer reached the CLI: one end, one tool run.
    assert_eq!(of_kind(&events, "request_ended").len(), 1, "{events:#?}");
    assert_eq!(of_kind(&events, "tool_result").len(), 1, "{events:#?}");
    assert!(fx.project().join("made.txt").exists());
    fx.close();
}

#[test]
fn a_subscriber_that_reconnects_mid_request_gets_the_request_again() {
    let Some(mut fx) = Fixture::start("reconnect", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (turn, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, before) = until_request(&mut stream, || fx.log());
    let n = request.id.expect("the request's id");
    drop(stream);

    // Reconnecting after the event before it, or after the first one (`queued`): the request again.
    for after in [n - 1, 1] {
        let mut again = fx.events(&turn, Some(after));
        let (replayed, between) = until_request(&mut again, || fx.log());
        assert_eq!(replayed, request, "after={after}");
        assert_eq!(
            between,
            before
                .iter()
                .filter(|e| e.id.is_some_and(|i| i > after))
                .cloned()
                .collect::<Vec<_>>(),
            "after={after}"
        );
    }
    // A subscriber that has seen it gets what follows, once answered.
    let mut after_it = fx.events(&turn, Some(n));
    let id = request.data["id"].as_str().unwrap();
    assert_eq!(fx.answer(id, json!({"decision": "allow"})).status, 200);
    let events = rest(&mut after_it);
    assert_eq!(events[0].event, "request_ended", "{events:#?}");
    assert_eq!(events[0].id, Some(n + 1));
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    fx.close();
}

#[test]
fn a_message_queued_behind_a_request_is_withdrawn_and_never_runs() {
    let Some(mut fx) = Fixture::start("queued", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (first, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    // The conversation is busy waiting for the answer: the next message waits its turn.
    let (queued, mut queued_events) = fx.send(&conv, "the queued message");
    assert_eq!(fx.turn(&queued)["status"], "queued");
    assert_eq!(fx.listed(&conv)["active_turn_id"], first.as_str());
    let cancel = fx
        .server
        .authed("POST", &format!("/api/turns/{queued}/cancel"), b"");
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    let withdrawn = rest(&mut queued_events);
    assert_eq!(status(&withdrawn), "cancelled", "{withdrawn:#?}");
    assert!(
        of_kind(&withdrawn, "text_delta").is_empty(),
        "{withdrawn:#?}"
    );
    assert_eq!(fx.turn(&queued)["status"], "cancelled");

    // The request is still there, and its turn goes on once answered.
    let id = request.data["id"].as_str().unwrap();
    assert_eq!(fx.answer(id, json!({"decision": "allow"})).status, 200);
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    assert!(fx.project().join("made.txt").exists());
    assert!(
        !fx.mock_saw("the queued message"),
        "the withdrawn message ran"
    );
    fx.close();
}

#[test]
fn an_idle_process_is_closed_and_the_next_message_resumes_the_session() {
    let Some(mut fx) = Fixture::start("idle", &["--idle-secs", "1"]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (first, mut stream) = fx.send(&conv, "hello one");
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    let pid = fx.claude_pid(&conv);
    common::wait_for("the idle process to be closed", 20, || {
        fx.processes(&conv).is_empty().then_some(())
    });
    assert!(!common::alive(pid));

    let (second, mut stream) = fx.send(&conv, "hello two");
    let events = rest(&mut stream);
    assert_eq!(status(&events), "succeeded", "{events:#?}\n{}", fx.log());
    assert_ne!(fx.claude_pid(&conv), pid);
    let (first, second) = (fx.turn(&first), fx.turn(&second));
    assert_eq!(second["response"], "mock reply: hello two");
    assert_eq!(second["session_id"], first["session_id"], "{second}");
    // The model saw the first exchange: the new process resumed the session.
    let last = fx.mock.requests().pop().unwrap();
    let history = last["messages"].to_string();
    assert!(
        history.contains("hello one") && history.contains("hello two"),
        "{history}"
    );
    fx.close();
}

#[test]
fn two_conversations_wait_each_for_its_own_answer() {
    let Some(mut fx) = Fixture::start("two", &[]) else {
        return;
    };
    let a = fx.conversation("default");
    let b = fx.conversation("default");
    let (turn_a, mut stream_a) = fx.send(&a, "RUN_BASH: touch a.txt");
    let (turn_b, mut stream_b) = fx.send(&b, "RUN_BASH: touch b.txt");
    let (request_a, _) = until_request(&mut stream_a, || fx.log());
    let (request_b, _) = until_request(&mut stream_b, || fx.log());
    let pending = fx.pending();
    assert_eq!(pending.len(), 2, "{pending:#?}");
    for (request, conv, turn) in [(&request_a, &a, &turn_a), (&request_b, &b, &turn_b)] {
        assert!(pending.contains(&request.data), "{pending:#?}");
        assert_eq!(request.data["conversation_id"], conv.as_str());
        assert_eq!(request.data["turn_id"], turn.as_str());
        assert_eq!(fx.listed(conv)["waiting"], 1);
    }
    assert_ne!(fx.claude_pid(&a), fx.claude_pid(&b));

    // Answered in the other order, each reaches its own process.
    let id_b = request_b.data["id"].as_str().unwrap();
    assert_eq!(fx.answer(id_b, json!({"decision": "allow"})).status, 200);
    let events_b = rest(&mut stream_b);
    assert_eq!(status(&events_b), "succeeded", "{events_b:#?}");
    assert_eq!(fx.pending(), vec![request_a.data.clone()]);
    assert_eq!(fx.listed(&a)["waiting"], 1);
    assert_eq!(fx.listed(&b)["waiting"], 0);
    let id_a = request_a.data["id"].as_str().unwrap();
    assert_eq!(fx.answer(id_a, json!({"decision": "deny"})).status, 200);
    let events_a = rest(&mut stream_a);
    assert_eq!(status(&events_a), "succeeded", "{events_a:#?}");
    assert!(fx.project().join("b.txt").exists());
    assert!(!fx.project().join("a.txt").exists());
    fx.close();
}

#[test]
fn a_daemon_restart_expires_the_pending_request_and_the_conversation_resumes() {
    restart_with_a_pending_request("restart", 15);
}

/// serve killed outright: its claude dies with it, and the next start expires the request.
#[test]
fn a_killed_daemon_expires_the_pending_request_at_its_next_start() {
    restart_with_a_pending_request("killed", 9);
}

fn restart_with_a_pending_request(test: &str, signal: i32) {
    let Some(mut fx) = Fixture::start(test, &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (turn, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    let id = request.data["id"].as_str().unwrap().to_string();
    fx.stop_with(signal);
    fx.restart();

    // Nothing waits any more: the process that asked is gone.
    assert!(fx.pending().is_empty());
    assert_eq!(fx.listed(&conv)["waiting"], 0);
    assert_eq!(fx.turn(&turn)["status"], "interrupted");
    let events = rest(&mut fx.events(&turn, Some(request.id.unwrap())));
    let ended = of_kind(&events, "request_ended");
    assert_eq!(ended.len(), 1, "{events:#?}");
    assert_eq!(ended[0].data["id"], id.as_str());
    assert_eq!(ended[0].data["state"], "expired", "{events:#?}");
    assert_eq!(status(&events), "interrupted", "{events:#?}");
    let late = fx.answer(&id, json!({"decision": "allow"}));
    assert_eq!(late.status, 410, "{}", late.text());
    assert!(!fx.project().join("made.txt").exists());

    // The next message resumes the conversation on a new process.
    let next = plain_turn(&fx, &conv, "after the restart");
    assert_eq!(status(&next), "succeeded", "{next:#?}\n{}", fx.log());
    let last = fx.mock.requests().pop().unwrap();
    let history = last["messages"].to_string();
    assert!(
        history.contains("touch made.txt") && history.contains("after the restart"),
        "{history}"
    );
    fx.close();
}

#[test]
fn stopping_a_turn_that_waits_for_an_answer_ends_its_request_and_keeps_the_process() {
    let Some(mut fx) = Fixture::start("stop_waiting", &[]) else {
        return;
    };
    let conv = fx.conversation("default");
    let (turn, mut stream) = fx.send(&conv, "RUN_BASH: touch made.txt");
    let (request, _) = until_request(&mut stream, || fx.log());
    let pid = fx.claude_pid(&conv);
    let cancel = fx
        .server
        .authed("POST", &format!("/api/turns/{turn}/cancel"), b"");
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    let events = rest(&mut stream);
    assert_eq!(status(&events), "cancelled", "{events:#?}\n{}", fx.log());
    let id = request.data["id"].as_str().unwrap();
    let ended = of_kind(&events, "request_ended");
    assert_eq!(ended.len(), 1, "{events:#?}");
    assert_eq!(ended[0].data["id"], id);
    assert_ne!(ended[0].data["state"], "answered", "{events:#?}");
    assert!(fx.pending().is_empty());
    assert_eq!(fx.listed(&conv)["waiting"], 0);
    let late = fx.answer(id, json!({"decision": "allow"}));
    assert_eq!(late.status, 410, "{}", late.text());
    assert!(!fx.project().join("made.txt").exists());

    let next = plain_turn(&fx, &conv, "after the stop");
    assert_eq!(status(&next), "succeeded", "{next:#?}\n{}", fx.log());
    assert_eq!(fx.claude_pid(&conv), pid, "{}", fx.log());
    fx.close();
}
