//! The long-lived mode of `fake-claude` (`--input-format stream-json`): one process, many turns, control
//! requests both ways. What it does is documented in the header of claude.rs ("Long-lived mode").
//!
//! A turn is the one-shot mode's `Turn`, with `Turn::live` set: its checkpoints then also take in what
//! arrived on stdin (queued prompts, control requests, answers), and an interrupt ends the turn by printing its
//! last lines and unwinding (`Aborted`) back to `serve`, which takes the next prompt.

use super::*;

use std::collections::VecDeque;
use std::io::BufRead;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::Receiver;

/// What each turn adds to the process's `total_cost_usd`, in units of 0.0001 USD: a one-shot turn's cost, so
/// that each turn's own cost (the difference) is the same in both modes.
const TURN_COST_UNITS: u64 = 21;
/// First words of Bash commands that never ask (read-only).
const READ_ONLY: &[&str] = &["echo", "ls", "pwd", "cat", "true"];
/// First words of Bash commands that `acceptEdits` lets through.
const EDITS: &[&str] = &["touch", "mkdir", "cp", "mv"];
const INTERRUPTED: &str = "[Request interrupted by user]";
const INTERRUPTED_TOOL: &str = "[Request interrupted by user for tool use]";
const NO_UPDATED_INPUT: &str = "Tool permission request failed: ZodError: updatedInput required";
const NOT_IN_PLAN_MODE: &str = "You are not in plan mode. This tool is only for exiting plan mode after \
     writing a plan. If your plan was already approved, continue with implementation.";
const PLAN_APPROVED: &str = "User has approved your plan. You can now start coding.";
const PLAN: &str = "# Plan\n\n1. Do the thing\n2. Check it";
/// `[[withdraw]]`: how long after asking the request is withdrawn.
const WITHDRAW_AFTER: Duration = Duration::from_millis(300);

/// A tool call raised by a marker of the long-lived mode.
#[derive(Clone, Debug)]
pub enum Tool {
    /// `[[bash:CMD]]`
    Bash(String),
    /// `[[question]]`
    Question,
    /// `[[plan]]`
    Plan,
    /// `[[edit:PATH:OLD=>NEW]]`: the path as given, the old and the new text (`\n` in them is a newline).
    Edit(String, String, String),
    /// `[[writefile:PATH:CONTENT]]`: the path as given and the content (`\n` in it is a newline).
    Write(String, String),
}

/// The tool markers of `text`, in the order they appear.
pub fn tools(text: &str) -> Vec<Tool> {
    const BASH: &str = "[[bash:";
    const EDIT: &str = "[[edit:";
    let mut found: Vec<(usize, Tool)> = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(BASH) {
        let start = from + at + BASH.len();
        let Some(len) = text[start..].find("]]") else {
            break;
        };
        found.push((
            from + at,
            Tool::Bash(text[start..start + len].trim().to_string()),
        ));
        from = start + len;
    }
    from = 0;
    while let Some(at) = text[from..].find(EDIT) {
        let start = from + at + EDIT.len();
        let Some(len) = text[start..].find("]]") else {
            break;
        };
        let body = &text[start..start + len];
        if let Some((path, rest)) = body.split_once(':')
            && let Some((old, new)) = rest.split_once("=>")
        {
            let unescape = |s: &str| s.replace("\\n", "\n");
            found.push((
                from + at,
                Tool::Edit(path.to_string(), unescape(old), unescape(new)),
            ));
        }
        from = start + len;
    }
    const WRITE: &str = "[[writefile:";
    from = 0;
    while let Some(at) = text[from..].find(WRITE) {
        let start = from + at + WRITE.len();
        let Some(len) = text[start..].find("]]") else {
            break;
        };
        if let Some((path, content)) = text[start..start + len].split_once(':') {
            found.push((
                from + at,
                Tool::Write(path.to_string(), content.replace("\\n", "\n")),
            ));
        }
        from = start + len;
    }
    for (marker, tool) in [("[[question]]", Tool::Question), ("[[plan]]", Tool::Plan)] {
        found.extend(text.match_indices(marker).map(|(at, _)| (at, tool.clone())));
    }
    found.sort_by_key(|(at, _)| *at);
    found.into_iter().map(|(_, tool)| tool).collect()
}

/// What the stdin reader hands over.
enum Input {
    Line(Vec<u8>),
    Eof,
}

/// The payload that unwinds an interrupted turn (its last lines are out already).
struct Aborted;

/// The process's state across turns.
pub struct Live {
    rx: Receiver<Input>,
    /// Prompts that arrived and wait for their turn.
    queue: VecDeque<String>,
    eof: bool,
    /// `--permission-prompt-tool stdio`: ask the host; otherwise a call that needs permission is refused.
    stdio: bool,
    mode: String,
    pub model: String,
    /// Allow rules: `--allowedTools` and the ones added by answers.
    rules: Vec<String>,
    /// Turns paid so far (`total_cost_usd` is cumulative).
    paid: u64,
    /// The host sent `interrupt`.
    interrupt: bool,
    /// The request id of our pending `can_use_tool`, and its answer once it came.
    waiting_for: Option<String>,
    answer: Option<Value>,
    /// The id of the tool call in progress.
    current_tool: Option<String>,
    /// The pid of the command an allowed Bash call runs (the leader of its own session).
    running: Option<i32>,
    tool_count: u64,
    /// Turns started so far (numbers the `<pid>.prompt.<n>` records).
    turns: u64,
    /// This turn's `permission_denials`.
    pub denials: Vec<Value>,
}

/// Runs the long-lived mode until stdin ends or a signal comes.
pub fn serve(args: &Args, cwd: String) -> ! {
    if let Some(id) = &args.resume
        && !resumable(id, &cwd)
    {
        no_session(id, Format::StreamJson);
    }
    LIVE_MODE.store(true, Ordering::SeqCst);
    let mut live = Box::new(Live {
        rx: spawn_reader(),
        queue: VecDeque::new(),
        eof: false,
        stdio: args.prompt_tool_stdio,
        mode: args.permission_mode.clone(),
        model: args.model.clone().unwrap_or_else(|| MODEL.to_string()),
        rules: args
            .allowed_tools
            .iter()
            .flat_map(|v| split_rules(v))
            .collect(),
        paid: 0,
        interrupt: false,
        waiting_for: None,
        answer: None,
        current_tool: None,
        running: None,
        tool_count: 1, // toolu_fake1 is `[[tool]]`'s
        turns: 0,
        denials: Vec::new(),
    });
    let mut session = args.resume.clone();
    loop {
        if let Some(text) = live.queue.pop_front() {
            live = run_turn(live, args, &cwd, &mut session, &text);
            continue;
        }
        if live.eof {
            finish(0);
        }
        if GOT_TERM.load(Ordering::SeqCst) {
            finish(143);
        }
        if GOT_INT.load(Ordering::SeqCst) {
            finish(130);
        }
        // One line at a time, so that a prompt starts its turn before what follows it is read.
        match live.rx.recv_timeout(TICK) {
            Ok(input) => {
                live.take(input);
                live.interrupt = false; // no turn to interrupt
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => live.eof = true,
        }
    }
}

fn run_turn(
    mut live: Box<Live>,
    args: &Args,
    cwd: &str,
    session: &mut Option<String>,
    text: &str,
) -> Box<Live> {
    start_turn_timing();
    live.turns += 1;
    record("prompt", text.as_bytes());
    record(&format!("prompt.{}", live.turns), text.as_bytes());
    let (session_id, n) = open_session(session.as_deref(), cwd, text)
        .unwrap_or_else(|id| no_session(&id, Format::StreamJson));
    *session = Some(session_id.clone());
    let markers = Markers::parse(text);
    IGNORE_TERM.store(markers.stubborn, Ordering::SeqCst);
    live.interrupt = false;
    let mut turn = Turn {
        out: Out::new(Format::StreamJson, true),
        partial: args.include_partial,
        markers,
        session_id,
        cwd: cwd.to_string(),
        permission_mode: live.mode.clone(),
        started: Instant::now(),
        num_turns: 1,
        in_tool: false,
        done: false,
        live: Some(live),
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| turn.run(text, n)));
    IGNORE_TERM.store(false, Ordering::SeqCst);
    if let Err(payload) = outcome
        && !payload.is::<Aborted>()
    {
        panic::resume_unwind(payload);
    }
    let mut live = turn.live.take().expect("the turn hands its state back");
    time_turn();
    live.denials.clear();
    live.current_tool = None;
    live.waiting_for = None;
    live.answer = None;
    live
}

/// Reads stdin line by line on its own thread; with `FAKE_CLAUDE_RECORD`, appends each line to `<pid>.stdin`.
fn spawn_reader() -> Receiver<Input> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        let _ = set.thread_block(); // signals go to the main thread
        let mut stdin = io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    append_record("stdin", &line);
                    if line.windows(16).any(|w| w == b"control_response") {
                        stamp("answered");
                    }
                    if tx.send(Input::Line(line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Input::Eof);
    });
    rx
}

impl Live {
    /// Takes in one stdin line: queues a prompt, answers a control request, keeps the answer we wait for.
    fn take(&mut self, input: Input) {
        let line = match input {
            Input::Eof => {
                self.eof = true;
                return;
            }
            Input::Line(line) => line,
        };
        let Ok(message) = serde_json::from_slice::<Value>(&line) else {
            if !line.trim_ascii().is_empty() {
                eprintln!(
                    "fake-claude: not JSON on stdin: {}",
                    String::from_utf8_lossy(&line).trim_end()
                );
            }
            return;
        };
        match message["type"].as_str() {
            Some("user") => self
                .queue
                .push_back(prompt_text(&message["message"]["content"])),
            Some("control_request") => self.control(&message["request_id"], &message["request"]),
            Some("control_response") => {
                let response = &message["response"];
                if self.waiting_for.is_some()
                    && response["request_id"].as_str() == self.waiting_for.as_deref()
                {
                    self.answer = Some(response.clone());
                }
            }
            _ => {}
        }
    }

    /// Answers a control request from the host.
    fn control(&mut self, id: &Value, request: &Value) {
        let subtype = request["subtype"].as_str().unwrap_or_default();
        let response = match subtype {
            "initialize" => json!({"commands": [], "models": [], "pid": std::process::id()}),
            "interrupt" => {
                self.interrupt = true;
                json!({})
            }
            "set_permission_mode" => {
                if let Some(mode) = request["mode"].as_str() {
                    self.mode = mode.to_string();
                }
                json!({})
            }
            "set_model" => {
                // `null`: back to the default model.
                self.model = request["model"].as_str().unwrap_or(MODEL).to_string();
                json!({})
            }
            _ => {
                write_line(&json!({"type": "control_response", "response": {
                    "subtype": "error", "request_id": id,
                    "error": format!("Unknown request subtype: {subtype}"),
                }}));
                return;
            }
        };
        write_line(&json!({"type": "control_response", "response": {
            "subtype": "success", "request_id": id, "response": response,
        }}));
    }
}

/// A user message's prompt: the string, or the `text` blocks joined by newlines, each `image` block standing as
/// `[image MEDIA_TYPE, N bytes of base64]` where it is.
fn prompt_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().map(str::to_string),
                Some("image") => Some(format!(
                    "[image {}, {} bytes of base64]",
                    b["source"]["media_type"].as_str().unwrap_or("?"),
                    b["source"]["data"].as_str().map_or(0, str::len)
                )),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

impl Turn {
    fn state(&mut self) -> &mut Live {
        self.live.as_mut().expect("long-lived mode")
    }

    /// Takes in what arrived on stdin; ends the turn on `interrupt` (the process stays) or SIGINT (it exits
    /// once the result is out).
    pub(super) fn live_checkpoint(&mut self) {
        let live = self.state();
        while let Ok(input) = live.rx.try_recv() {
            live.take(input);
        }
        if self.done {
            self.state().interrupt = false;
            return;
        }
        // `[[stubborn]]` also ignores `interrupt` (acknowledged, then nothing): a hung CLI.
        if std::mem::take(&mut self.state().interrupt) && !self.markers.stubborn {
            self.abort(false);
        }
        let int_stops =
            !self.markers.stubborn && !self.markers.ignore_int && !self.markers.success_on_int;
        if int_stops && GOT_INT.swap(false, Ordering::SeqCst) {
            self.abort(true);
        }
    }

    /// Ends the turn as interrupted: the running tool's error result, the user line, the result. Then exits
    /// (`exit`) or unwinds to `serve`.
    fn abort(&mut self, exit: bool) -> ! {
        let in_slow_tool = self.in_tool && self.markers.tool;
        let live = self.state();
        live.waiting_for = None; // a late answer is ignored
        live.answer = None;
        if let Some(pid) = live.running.take() {
            kill_group(pid);
        }
        let tool = live
            .current_tool
            .take()
            .or_else(|| in_slow_tool.then(|| "toolu_fake1".to_string()));
        let in_tool = self.in_tool || tool.is_some();
        let text = if in_tool {
            INTERRUPTED_TOOL
        } else {
            INTERRUPTED
        };
        if let Some(id) = tool {
            let message = self.tool_result(&id, text, true);
            self.out.message(message);
        }
        self.out.message(json!({
            "type": "user",
            "message": {"role": "user", "content": [{"type": "text", "text": text}]},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": new_uuid(),
            "timestamp": timestamp(),
        }));
        let reason = if in_tool {
            "aborted_tools"
        } else {
            "aborted_streaming"
        };
        let mut result = self.result("error_during_execution", true, reason);
        result["errors"] = json!([]);
        self.add_cost(&mut result);
        self.out.result(result);
        self.done = true;
        if exit {
            finish(0);
        }
        panic::resume_unwind(Box::new(Aborted));
    }

    /// Long-lived mode: `total_cost_usd` is the process's total (a turn that cost nothing adds nothing).
    pub(super) fn add_cost(&mut self, result: &mut Value) {
        if let Some(live) = &mut self.live {
            if result["total_cost_usd"].as_f64().is_some_and(|c| c > 0.0) {
                live.paid += TURN_COST_UNITS;
            }
            result["total_cost_usd"] = json!(live.paid as f64 / 10_000.0);
        }
    }

    fn tool_result(&self, id: &str, content: &str, is_error: bool) -> Value {
        json!({
            "type": "user",
            "message": {"role": "user", "content": [
                {"tool_use_id": id, "type": "tool_result", "content": content, "is_error": is_error},
            ]},
            "parent_tool_use_id": null, "session_id": self.session_id, "uuid": new_uuid(),
            "timestamp": timestamp(),
        })
    }

    /// The `[[bash:…]]`, `[[question]]` and `[[plan]]` calls, in order, each with its result.
    pub(super) fn live_tools(&mut self) {
        for tool in self.markers.tools.clone() {
            let live = self.state();
            live.tool_count += 1;
            let id = format!("toolu_fake{}", live.tool_count);
            let (name, input) = match &tool {
                Tool::Bash(cmd) => (
                    "Bash",
                    json!({"command": cmd, "description": first_word(cmd)}),
                ),
                Tool::Question => ("AskUserQuestion", questions()),
                Tool::Plan => ("ExitPlanMode", json!({"plan": PLAN})),
                Tool::Edit(path, old, new) => {
                    let path = if path.starts_with('/') {
                        path.clone()
                    } else {
                        format!("{}/{path}", self.cwd)
                    };
                    (
                        "Edit",
                        json!({"file_path": path, "old_string": old, "new_string": new}),
                    )
                }
                Tool::Write(path, content) => {
                    let path = if path.starts_with('/') {
                        path.clone()
                    } else {
                        format!("{}/{path}", self.cwd)
                    };
                    ("Write", json!({"file_path": path, "content": content}))
                }
            };
            let block = Block::ToolUse {
                id: id.clone(),
                name,
                input: input.clone(),
            };
            self.api_message(vec![block], "tool_use");
            self.state().current_tool = Some(id.clone());
            let (content, is_error) = match tool {
                Tool::Bash(cmd) => self.bash(&id, &cmd, input),
                Tool::Question => self.question(&id, input),
                Tool::Plan => self.plan(&id, input),
                Tool::Edit(..) => self.edit(&id, input),
                Tool::Write(..) => self.write_file(&id, input),
            };
            let message = self.tool_result(&id, &content, is_error);
            self.emit(message);
            self.state().current_tool = None;
            self.num_turns += 1;
        }
    }

    fn bash(&mut self, id: &str, cmd: &str, input: Value) -> (String, bool) {
        if !self.needs_permission(cmd) {
            return self.run_command(cmd);
        }
        let request = json!({
            "subtype": "can_use_tool", "tool_name": "Bash", "display_name": "Bash", "input": input,
            "description": first_word(cmd),
            "permission_suggestions": [
                {"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": cmd}], "behavior": "allow",
                 "destination": "localSettings"},
                {"type": "setMode", "mode": "acceptEdits", "destination": "session"},
            ],
            "blocked_path": format!("{}/{}", self.cwd, cmd.split_whitespace().last().unwrap_or_default()),
            "tool_use_id": id,
        });
        match self.ask("Bash", id, &input, request) {
            Ok(updated) => {
                let command = updated["command"].as_str().unwrap_or(cmd).to_string();
                self.run_command(&command)
            }
            Err(text) => (text, true),
        }
    }

    fn question(&mut self, id: &str, input: Value) -> (String, bool) {
        let request = json!({
            "subtype": "can_use_tool", "tool_name": "AskUserQuestion", "display_name": "AskUserQuestion",
            "input": input, "tool_use_id": id,
        });
        match self.ask("AskUserQuestion", id, &input, request) {
            Ok(updated) => {
                let answers: Vec<String> = input["questions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|q| {
                        let q = q["question"].as_str()?;
                        let a = updated["answers"][q].as_str()?;
                        Some(format!("\"{q}\"=\"{a}\""))
                    })
                    .collect();
                let text = format!(
                    "Your questions have been answered: {}. You can now continue with these answers in mind.",
                    answers.join(", ")
                );
                (text, false)
            }
            Err(text) => (text, true),
        }
    }

    fn plan(&mut self, id: &str, input: Value) -> (String, bool) {
        if self.state().mode != "plan" {
            return (NOT_IN_PLAN_MODE.to_string(), true);
        }
        let request = json!({
            "subtype": "can_use_tool", "tool_name": "ExitPlanMode", "display_name": "ExitPlanMode",
            "input": input, "tool_use_id": id,
        });
        match self.ask("ExitPlanMode", id, &input, request) {
            Ok(_) => {
                self.state().mode = "default".to_string();
                (PLAN_APPROVED.to_string(), false)
            }
            Err(text) => (text, true),
        }
    }

    /// `[[edit:…]]`: asks unless the mode is acceptEdits or bypassPermissions; allowed, replaces the first
    /// occurrence of `old_string` in the file (with the answer's `updatedInput`).
    fn edit(&mut self, id: &str, input: Value) -> (String, bool) {
        let mode = self.state().mode.clone();
        let input = if mode == "acceptEdits" || mode == "bypassPermissions" {
            input
        } else {
            let request = json!({
                "subtype": "can_use_tool", "tool_name": "Edit", "display_name": "Edit", "input": input,
                "permission_suggestions": [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}],
                "blocked_path": input["file_path"], "tool_use_id": id,
            });
            match self.ask("Edit", id, &input, request) {
                Ok(updated) => updated,
                Err(text) => return (text, true),
            }
        };
        let (path, old, new) = (
            input["file_path"].as_str().unwrap_or_default(),
            input["old_string"].as_str().unwrap_or_default(),
            input["new_string"].as_str().unwrap_or_default(),
        );
        match std::fs::read_to_string(path) {
            Ok(text) if text.contains(old) => {
                match std::fs::write(path, text.replacen(old, new, 1)) {
                    Ok(()) => (format!("The file {path} has been updated."), false),
                    Err(e) => (format!("<tool_use_error>{e}</tool_use_error>"), true),
                }
            }
            Ok(_) => (
                "<tool_use_error>String to replace not found in file.</tool_use_error>".into(),
                true,
            ),
            Err(e) => (format!("<tool_use_error>{e}</tool_use_error>"), true),
        }
    }

    /// `[[writefile:…]]`: asks as an edit does; allowed, writes the content to the file (made if missing).
    fn write_file(&mut self, id: &str, input: Value) -> (String, bool) {
        let mode = self.state().mode.clone();
        let input = if mode == "acceptEdits" || mode == "bypassPermissions" {
            input
        } else {
            let request = json!({
                "subtype": "can_use_tool", "tool_name": "Write", "display_name": "Write", "input": input,
                "permission_suggestions": [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}],
                "blocked_path": input["file_path"], "tool_use_id": id,
            });
            match self.ask("Write", id, &input, request) {
                Ok(updated) => updated,
                Err(text) => return (text, true),
            }
        };
        let path = input["file_path"].as_str().unwrap_or_default();
        let existed = std::path::Path::new(path).exists();
        match std::fs::write(path, input["content"].as_str().unwrap_or_default()) {
            Ok(()) if existed => (format!("The file {path} has been updated."), false),
            Ok(()) => (format!("File created successfully at: {path}"), false),
            Err(e) => (format!("<tool_use_error>{e}</tool_use_error>"), true),
        }
    }

    /// Whether a Bash call of `cmd` must ask, per the current mode and allow rules.
    fn needs_permission(&self, cmd: &str) -> bool {
        let live = self.live.as_ref().expect("long-lived mode");
        let word = first_word(cmd);
        if live.mode == "bypassPermissions" || READ_ONLY.contains(&word) {
            return false;
        }
        if live.mode == "acceptEdits" && EDITS.contains(&word) {
            return false;
        }
        let local = local_rules(&self.cwd);
        !live.rules.iter().chain(&local).any(|r| rule_allows(r, cmd))
    }

    /// Asks the host with a `can_use_tool` request and waits for the answer (no timeout), still taking
    /// control requests. `Ok(updatedInput)` on allow (after applying `updatedPermissions`), else the tool
    /// result's error text. A deny with `interrupt` ends the turn.
    fn ask(
        &mut self,
        tool_name: &str,
        id: &str,
        input: &Value,
        request: Value,
    ) -> Result<Value, String> {
        if !self.state().stdio {
            self.state().denials.push(denial(tool_name, id, input));
            return Err(format!(
                "Claude requested permissions to use {tool_name}, but you haven't granted it yet."
            ));
        }
        let request_id = new_uuid();
        self.checkpoint();
        write_line(
            &json!({"type": "control_request", "request_id": request_id, "request": request}),
        );
        stamp("asked");
        self.state().waiting_for = Some(request_id.clone());
        let asked = Instant::now();
        let response = loop {
            self.checkpoint();
            if let Some(answer) = self.state().answer.take() {
                break answer;
            }
            if self.markers.withdraw && asked.elapsed() >= WITHDRAW_AFTER {
                write_line(&json!({"type": "control_cancel_request", "request_id": request_id}));
                break json!({"subtype": "success", "response": {"behavior": "deny", "message": "withdrawn"}});
            }
            if self.state().eof {
                finish(0); // nobody left to answer
            }
            std::thread::sleep(TICK);
        };
        self.state().waiting_for = None;
        if response["subtype"] == "error" {
            let error = response["error"].as_str().unwrap_or_default();
            return Err(format!("Tool permission request failed: Error: {error}"));
        }
        let decision = &response["response"];
        if decision["behavior"] == "allow" {
            let Some(updated) = decision.get("updatedInput").filter(|v| v.is_object()) else {
                return Err(NO_UPDATED_INPUT.to_string());
            };
            for update in decision["updatedPermissions"]
                .as_array()
                .into_iter()
                .flatten()
            {
                self.apply(update);
            }
            return Ok(updated.clone());
        }
        if decision["interrupt"] == true {
            self.abort(false);
        }
        self.state().denials.push(denial(tool_name, id, input));
        Err(decision["message"].as_str().unwrap_or_default().to_string())
    }

    /// One entry of an answer's `updatedPermissions`.
    fn apply(&mut self, update: &Value) {
        match update["type"].as_str() {
            Some("addRules") if update["behavior"] == "allow" => {
                for rule in update["rules"].as_array().into_iter().flatten() {
                    let tool = rule["toolName"].as_str().unwrap_or("Bash");
                    let text = match rule["ruleContent"].as_str() {
                        Some(content) => format!("{tool}({content})"),
                        None => tool.to_string(),
                    };
                    if update["destination"] == "localSettings" {
                        save_local_rule(&self.cwd, &text);
                    }
                    self.state().rules.push(text);
                }
            }
            Some("setMode") => {
                if let Some(mode) = update["mode"].as_str() {
                    self.state().mode = mode.to_string();
                }
            }
            _ => {}
        }
    }

    /// Runs `command` with `sh -c` in the cwd, in its own session (killed on interrupt); returns its output
    /// (stdout and stderr, as they came) and whether it failed.
    fn run_command(&mut self, command: &str) -> (String, bool) {
        let spawned = io::pipe().and_then(|(reader, writer)| {
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(command)
                .current_dir(&self.cwd)
                .stdin(Stdio::null())
                .stdout(writer.try_clone()?)
                .stderr(writer);
            // SAFETY: the closure runs between fork and exec and only calls setsid(2), which is
            // async-signal-safe.
            unsafe {
                cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
            }
            let child = cmd.spawn()?;
            Ok((child, reader)) // `cmd` goes, and with it our write end of the pipe
        });
        let (mut child, mut reader) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => return (format!("fake-claude: cannot run sh: {e}"), true),
        };
        let output = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = reader.read_to_end(&mut bytes);
            bytes
        });
        self.state().running = Some(child.id() as i32);
        let failed = loop {
            self.checkpoint();
            match child.try_wait() {
                Ok(Some(status)) => break !status.success(),
                Ok(None) => std::thread::sleep(TICK),
                Err(_) => break true,
            }
        };
        self.state().running = None;
        let bytes = output.join().unwrap_or_default();
        (
            String::from_utf8_lossy(&bytes).trim_end().to_string(),
            failed,
        )
    }
}

fn denial(tool_name: &str, id: &str, input: &Value) -> Value {
    json!({"tool_name": tool_name, "tool_use_id": id, "tool_input": input})
}

/// `[[question]]`'s input: two questions, the second multi-select.
fn questions() -> Value {
    json!({"questions": [
        {"question": "Which database should we use?", "header": "Database", "options": [
            {"label": "SQLite", "description": "a file"},
            {"label": "Postgres", "description": "a server"},
        ], "multiSelect": false},
        {"question": "Which checks should run?", "header": "Checks", "options": [
            {"label": "Unit tests", "description": "fast"},
            {"label": "Lint", "description": "style"},
            {"label": "Browser", "description": "slow"},
        ], "multiSelect": true},
    ]})
}

fn first_word(cmd: &str) -> &str {
    cmd.split_whitespace().next().unwrap_or_default()
}

/// Splits an `--allowedTools` value into rules: at commas and spaces outside parentheses.
fn split_rules(value: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' | ' ' if depth == 0 => {
                if !current.is_empty() {
                    rules.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        rules.push(current);
    }
    rules
}

/// Whether the allow rule `rule` covers the Bash command `cmd`: `Bash`, `Bash(CMD)`, `Bash(PREFIX *)`,
/// `Bash(PREFIX:*)`, `Bash(PREFIX*)`.
fn rule_allows(rule: &str, cmd: &str) -> bool {
    if rule == "Bash" {
        return true;
    }
    let Some(inner) = rule.strip_prefix("Bash(").and_then(|r| r.strip_suffix(')')) else {
        return false;
    };
    if let Some(prefix) = inner
        .strip_suffix(" *")
        .or_else(|| inner.strip_suffix(":*"))
    {
        return cmd == prefix || cmd.starts_with(&format!("{prefix} "));
    }
    match inner.strip_suffix('*') {
        Some(prefix) => cmd.starts_with(prefix),
        None => cmd == inner,
    }
}

fn local_settings(cwd: &str) -> PathBuf {
    Path::new(cwd).join(".claude").join("settings.local.json")
}

/// `permissions.allow` of `<cwd>/.claude/settings.local.json`.
fn local_rules(cwd: &str) -> Vec<String> {
    fs::read(local_settings(cwd))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            let allow = v["permissions"]["allow"].as_array()?.clone();
            Some(
                allow
                    .iter()
                    .filter_map(|r| r.as_str().map(String::from))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// Adds `rule` to `permissions.allow` of `<cwd>/.claude/settings.local.json` (kept if already there).
fn save_local_rule(cwd: &str, rule: &str) {
    let path = local_settings(cwd);
    let mut settings = fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if !settings["permissions"].is_object() {
        settings["permissions"] = json!({});
    }
    if !settings["permissions"]["allow"].is_array() {
        settings["permissions"]["allow"] = json!([]);
    }
    let allow = settings["permissions"]["allow"]
        .as_array_mut()
        .expect("an array");
    if !allow.iter().any(|r| r == rule) {
        allow.push(json!(rule));
    }
    let written = path
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| fs::write(&path, format!("{settings:#}\n")));
    if let Err(e) = written {
        eprintln!("fake-claude: cannot write {}: {e}", path.display());
    }
}

/// Kills the session led by `pid` (a command of the Bash tool) and reaps its leader.
fn kill_group(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

/// Appends `<what> <realtime ns>` to `$FAKE_CLAUDE_STAMPS`, if set: when a permission request was printed, and when an
/// answer was read (for the latency benchmark).
fn stamp(what: &str) {
    if let Some(path) = std::env::var_os("FAKE_CLAUDE_STAMPS") {
        let line = format!("{what} {}\n", now_ns());
        let _ = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

/// Appends to `<pid>.<name>` in `$FAKE_CLAUDE_RECORD`, if set.
fn append_record(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("FAKE_CLAUDE_RECORD") {
        let path = Path::new(&dir).join(format!("{}.{name}", std::process::id()));
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes));
        if let Err(e) = appended {
            eprintln!("fake-claude: cannot write {}: {e}", path.display());
        }
    }
}
