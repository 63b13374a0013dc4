//! Contract tests for `tests/common/mock_api.rs`, and for the REAL Claude Code
//! CLI talking to it.
//!
//! The `mock_*` tests speak raw HTTP to the mock and need nothing else.
//! The `cli_*` tests need the real CLI, found through `REMOTE_AGENT_REAL_CLAUDE`
//! or else `claude` on `PATH`. When it is missing they print `SKIP: …` and
//! pass, except with `CI=true`, where they fail.
//!
//! Each CLI run gets: `ANTHROPIC_BASE_URL=<mock>`, `ANTHROPIC_API_KEY=test-key`,
//! `CLAUDE_CODE_MAX_RETRIES=0`, a temporary `HOME` and `CLAUDE_CONFIG_DIR`, a
//! temporary project dir as cwd, the args
//! `-p --output-format stream-json --verbose --include-partial-messages`, and
//! the prompt on stdin (then stdin is closed).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::mock_api::MockApi;
use common::real_claude as claude_or_skip;
use serde_json::{Value, json};

/// Upper bound for one CLI run (a plain run takes about 1 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// A temp HOME (with CLAUDE_CONFIG_DIR inside) and a temp project dir,
/// shared by the runs of one test so that `--resume` works.
/// The CLI's own `--version` line, e.g. "2.1.197 (Claude Code)".
fn cli_version(claude: &std::path::Path) -> String {
    let out = std::process::Command::new(claude)
        .arg("--version")
        .output()
        .expect("claude --version");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Env {
    claude: PathBuf,
    home: tempfile::TempDir,
    project: tempfile::TempDir,
}

struct Run {
    rc: Option<i32>,
    stdout: String,
    stderr: String,
    lines: Vec<Value>,
    elapsed: Duration,
}

impl Run {
    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines
            .iter()
            .filter(move |l| l.get("type").and_then(Value::as_str) == Some(ty))
    }

    fn result(&self) -> &Value {
        self.of_type("result")
            .last()
            .unwrap_or_else(|| panic!("no result line\n{}", self.dump()))
    }

    fn session_id(&self) -> String {
        self.result()["session_id"]
            .as_str()
            .unwrap_or_else(|| panic!("result without session_id\n{}", self.dump()))
            .to_string()
    }

    /// Assert rc 0 and a successful `result` with this text.
    fn assert_success(&self, expected: &str) {
        let res = self.result();
        assert_eq!(self.rc, Some(0), "{}", self.dump());
        assert_eq!(res["subtype"], "success", "{}", self.dump());
        assert_eq!(res["is_error"], false, "{}", self.dump());
        assert_eq!(res["result"], expected, "{}", self.dump());
    }

    fn dump(&self) -> String {
        format!(
            "rc={:?} elapsed={:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.rc, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Env {
    fn new(claude: PathBuf) -> Env {
        Env {
            claude,
            home: tempfile::tempdir().expect("temp home"),
            project: tempfile::tempdir().expect("temp project"),
        }
    }

    fn run(
        &self,
        mock: &MockApi,
        prompt: &str,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Run {
        let home = self.home.path();
        let config = home.join(".claude");
        std::fs::create_dir_all(&config).expect("create config dir");
        let mut cmd = Command::new(&self.claude);
        cmd.args([
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
        ])
        .args(extra_args)
        .current_dir(self.project.path())
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("HOME", home)
        .env("CLAUDE_CONFIG_DIR", &config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let mut child = cmd.spawn().expect("spawn claude");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(prompt.as_bytes()).expect("write prompt");
        } // stdin closed here
        let out_h = read_all(child.stdout.take().expect("stdout"));
        let err_h = read_all(child.stderr.take().expect("stderr"));
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if start.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out_h.join().unwrap();
                let stderr = err_h.join().unwrap();
                panic!(
                    "claude timed out after {RUN_TIMEOUT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = start.elapsed();
        let stdout = out_h.join().unwrap();
        let stderr = err_h.join().unwrap();
        let lines = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("non-JSON stdout line {l:?}: {e}\n{stderr}"))
            })
            .collect();
        let run = Run {
            rc: status.code(),
            stdout,
            stderr,
            lines,
            elapsed,
        };
        eprintln!("claude run took {:?} (rc {:?})", run.elapsed, run.rc);
        run
    }
}

fn read_all<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The main-loop requests (not the structured-output title call).
fn main_requests(mock: &MockApi) -> Vec<Value> {
    mock.requests()
        .into_iter()
        .filter(|r| r.pointer("/output_config/format").is_none())
        .collect()
}

/// Plain text of the last user message (strings and text blocks).
fn last_user_text(req: &Value) -> String {
    let msgs = req["messages"].as_array().expect("messages");
    let last = msgs
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .expect("a user message");
    all_text(&last["content"])
}

fn all_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Tests against the real CLI
// ---------------------------------------------------------------------------

#[test]
fn cli_plain_prompt_streams_and_succeeds() {
    let Some(claude) = claude_or_skip("cli_plain_prompt_streams_and_succeeds") else {
        return;
    };
    let mock = MockApi::start();
    let env = Env::new(claude);
    let run = env.run(&mock, "hello there", &[], &[]);
    run.assert_success("mock reply: hello there");

    let init = run
        .of_type("system")
        .find(|l| l["subtype"] == "init")
        .unwrap_or_else(|| panic!("no system/init\n{}", run.dump()));
    assert_eq!(init["session_id"], run.result()["session_id"]);
    assert!(init["cwd"].is_string());

    let deltas: String = run
        .of_type("stream_event")
        .filter(|l| l["event"]["delta"]["type"] == "text_delta")
        .filter_map(|l| l["event"]["delta"]["text"].as_str())
        .collect();
    assert_eq!(deltas, "mock reply: hello there", "{}", run.dump());

    let assistant_text: String = run
        .of_type("assistant")
        .map(|l| all_text(&l["message"]["content"]))
        .collect();
    assert_eq!(assistant_text, "mock reply: hello there");

    // The mock saw the main request with our prompt, plus the title call.
    let main = main_requests(&mock);
    assert_eq!(main.len(), 1, "{:#?}", mock.requests());
    assert!(last_user_text(&main[0]).contains("hello there"));
    // 2.1.197 also asks the API for a session title on every -p run; 2.1.332 no longer does in this mode.
    if cli_version(&env.claude).starts_with("2.1.197") {
        assert!(
            mock.requests().len() >= 2,
            "expected a title-generation call too"
        );
    }
    eprintln!("plain run wall time: {:?}", run.elapsed);
}

#[test]
fn cli_resume_keeps_session_and_sends_history() {
    let Some(claude) = claude_or_skip("cli_resume_keeps_session_and_sends_history") else {
        return;
    };
    let mock = MockApi::start();
    let env = Env::new(claude);
    let first = env.run(&mock, "first prompt alpha", &[], &[]);
    first.assert_success("mock reply: first prompt alpha");
    let sid = first.session_id();
    let n_after_first = mock.requests().len();

    let second = env.run(&mock, "second prompt beta", &["--resume", &sid], &[]);
    second.assert_success("mock reply: second prompt beta");
    assert_eq!(
        second.session_id(),
        sid,
        "--resume must keep the session id"
    );

    let main = main_requests(&mock);
    let last = main.last().expect("a main request");
    let history = serde_json::to_string(&last["messages"]).unwrap();
    assert!(history.contains("first prompt alpha"), "{history}");
    assert!(
        history.contains("mock reply: first prompt alpha"),
        "{history}"
    );
    assert!(last_user_text(last).contains("second prompt beta"));
    assert!(mock.requests().len() > n_after_first);
}

#[test]
fn cli_prompt_that_looks_like_a_flag_reaches_the_model() {
    let Some(claude) = claude_or_skip("cli_prompt_that_looks_like_a_flag_reaches_the_model") else {
        return;
    };
    let mock = MockApi::start();
    let env = Env::new(claude);
    let run = env.run(&mock, "--version", &[], &[]);
    run.assert_success("mock reply: --version");
    assert!(!run.stdout.contains("(Claude Code)"), "{}", run.dump());
    let main = main_requests(&mock);
    assert_eq!(main.len(), 1, "{:#?}", mock.requests());
    assert!(last_user_text(&main[0]).contains("--version"));
}

/// Checks the tool_use → tool_result → final answer sequence of a Bash run.
fn assert_bash_round_trip(run: &Run, mock: &MockApi, command: &str, expected_stdout: &str) {
    let res = run.result();
    assert_eq!(run.rc, Some(0), "{}", run.dump());
    assert_eq!(res["subtype"], "success", "{}", run.dump());
    assert_eq!(res["is_error"], false, "{}", run.dump());
    // The mock quotes the tool's output in its final reply.
    assert!(
        res["result"]
            .as_str()
            .is_some_and(|r| r.starts_with("Tool ran fine: ") && r.contains(expected_stdout)),
        "{}",
        run.dump()
    );
    let tool_use = run
        .of_type("assistant")
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|b| b["type"] == "tool_use")
        .unwrap_or_else(|| panic!("no tool_use\n{}", run.dump()));
    assert_eq!(tool_use["name"], "Bash");
    assert_eq!(tool_use["input"]["command"], command);
    let tool_result = run
        .of_type("user")
        .flat_map(|l| {
            l["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|b| b["type"] == "tool_result")
        .unwrap_or_else(|| panic!("no tool_result\n{}", run.dump()));
    assert_eq!(tool_result["tool_use_id"], tool_use["id"]);
    assert_eq!(tool_result["is_error"], false, "{}", run.dump());
    assert!(
        tool_result["content"]
            .as_str()
            .is_some_and(|c| c.contains(expected_stdout)),
        "{}",
        run.dump()
    );
    assert_eq!(run.result()["num_turns"], 2);
    // The second API call carried the tool_result back to the mock.
    let main = main_requests(mock);
    assert_eq!(main.len(), 2, "{:#?}", mock.requests());
    let last_msgs = serde_json::to_string(&main[1]["messages"]).unwrap();
    assert!(last_msgs.contains("tool_result") && last_msgs.contains(expected_stdout));
}

#[test]
fn cli_bash_tool_round_trip() {
    let Some(claude) = claude_or_skip("cli_bash_tool_round_trip") else {
        return;
    };
    let mock = MockApi::start();
    let env = Env::new(claude);
    // `echo` is read-only and runs in the default mode too; the allow rule
    // makes the test independent of that classification.
    let run = env.run(
        &mock,
        "RUN_BASH: echo hi-from-tool",
        &["--allowedTools=Bash(echo *)"],
        &[],
    );
    assert_bash_round_trip(&run, &mock, "echo hi-from-tool", "hi-from-tool");
}

#[test]
fn cli_bash_tool_writes_with_bypass_permissions_as_root() {
    let Some(claude) = claude_or_skip("cli_bash_tool_writes_with_bypass_permissions_as_root")
    else {
        return;
    };
    let mock = MockApi::start();
    let env = Env::new(claude);
    // As root, bypassPermissions is refused unless IS_SANDBOX=1.
    let run = env.run(
        &mock,
        "RUN_BASH: touch created_by_tool.txt && echo made-it",
        &["--permission-mode=bypassPermissions"],
        &[("IS_SANDBOX", "1")],
    );
    assert_bash_round_trip(
        &run,
        &mock,
        "touch created_by_tool.txt && echo made-it",
        "made-it",
    );
    assert!(env.project.path().join("created_by_tool.txt").is_file());
}

// ---------------------------------------------------------------------------
// Raw HTTP tests of the mock itself (no CLI needed)
// ---------------------------------------------------------------------------

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// `(event, data)` pairs of an SSE body.
    fn sse(&self) -> Vec<(String, Value)> {
        let text = String::from_utf8(self.body.clone()).unwrap();
        text.split("\n\n")
            .filter(|f| !f.trim().is_empty())
            .map(|f| {
                let ev = f.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
                let data = f.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                (ev.to_string(), serde_json::from_str(data).unwrap())
            })
            .collect()
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    (status, headers)
}

/// Read one response (Content-Length or chunked body; none for HEAD).
fn read_resp(r: &mut BufReader<TcpStream>, head_only: bool) -> Resp {
    let (status, headers) = read_head(r);
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only {
        return resp;
    }
    if resp.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            resp.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let len: usize = resp.header("content-length").unwrap().parse().unwrap();
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body).unwrap();
    }
    resp
}

fn connect(mock: &MockApi) -> (TcpStream, BufReader<TcpStream>) {
    let addr = mock.base_url().trim_start_matches("http://").to_string();
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn post(s: &mut TcpStream, path: &str, body: &Value) {
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": [{"type": "text", "text": text}]})
}

#[test]
fn mock_keep_alive_json_and_sse_on_one_connection() {
    let mock = MockApi::start();
    assert!(mock.base_url().starts_with("http://127.0.0.1:"));
    let (mut s, mut r) = connect(&mock);

    // Non-streaming text.
    post(
        &mut s,
        "/v1/messages?beta=true",
        &json!({"model": "m1", "max_tokens": 5, "messages": [user("  hi  ")]}),
    );
    let resp = read_resp(&mut r, false);
    assert_eq!(resp.status, 200);
    let msg = resp.json();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["model"], "m1");
    assert_eq!(msg["stop_reason"], "end_turn");
    assert_eq!(msg["content"][0]["text"], "mock reply: hi");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_mock_"));

    // Streaming tool_use on the same connection.
    post(
        &mut s,
        "/v1/messages",
        &json!({"model": "m2", "stream": true,
            "messages": [user("<system-reminder>x</system-reminder>"), user("RUN_BASH: ls -l /\nthanks")]}),
    );
    let resp = read_resp(&mut r, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let frames = resp.sse();
    let names: Vec<&str> = frames.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    for (ev, data) in &frames {
        assert_eq!(data["type"], ev.as_str());
    }
    assert_eq!(frames[0].1["message"]["model"], "m2");
    assert_eq!(frames[1].1["content_block"]["type"], "tool_use");
    assert_eq!(frames[1].1["content_block"]["name"], "Bash");
    let partial: String = frames
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    let input: Value = serde_json::from_str(&partial).unwrap();
    assert_eq!(input, json!({"command": "ls -l /", "description": "run"}));
    let delta = frames.iter().find(|(e, _)| e == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert!(delta.1["usage"]["output_tokens"].is_number());

    // tool_result → plain text, streamed.
    post(
        &mut s,
        "/v1/messages",
        &json!({"model": "m3", "stream": true, "messages": [
            user("RUN_BASH: ls"),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        ]}),
    );
    let frames = read_resp(&mut r, false).sse();
    let text: String = frames
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "Tool ran fine: ok");

    // Other endpoints.
    post(
        &mut s,
        "/v1/messages/count_tokens",
        &json!({"messages": []}),
    );
    assert_eq!(read_resp(&mut r, false).json(), json!({"input_tokens": 10}));
    write!(s, "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let resp = read_resp(&mut r, false);
    assert_eq!((resp.status, resp.json()), (200, json!({})));
    write!(s, "HEAD / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    assert_eq!(read_resp(&mut r, true).status, 200);
    post(&mut s, "/v2/nope", &json!({}));
    let resp = read_resp(&mut r, false);
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["type"], "error");

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3, "only /v1/messages bodies are recorded");
    assert_eq!(reqs[0]["model"], "m1");
    assert_eq!(reqs[2]["model"], "m3");
    let log = mock.log();
    assert_eq!(log.len(), 7);
    assert!(log.iter().all(|l| l.conn == log[0].conn));
}

#[test]
fn mock_chunked_request_body_and_title_call() {
    let mock = MockApi::start();
    let (mut s, mut r) = connect(&mock);
    let body = json!({"model": "m", "messages": [user("RUN_BASH: rm -rf /")],
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object",
            "properties": {"title": {"type": "string"}}, "required": ["title"]}}}})
    .to_string();
    let (a, b) = body.split_at(body.len() / 2);
    write!(
        s,
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .unwrap();
    let msg = read_resp(&mut r, false).json();
    // A structured-output request gets schema-shaped JSON text, never a tool.
    assert_eq!(msg["stop_reason"], "end_turn");
    let title: Value = serde_json::from_str(msg["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(title["title"].is_string());
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn mock_hang_holds_the_stream_until_dropped() {
    let mock = MockApi::start();
    let (mut s, mut r) = connect(&mock);
    post(
        &mut s,
        "/v1/messages",
        &json!({"model": "m", "stream": true, "messages": [user("please HANG")]}),
    );
    let (status, _) = read_head(&mut r);
    assert_eq!(status, 200);
    let mut size = String::new();
    r.read_line(&mut size).unwrap();
    let mut frame = vec![0; usize::from_str_radix(size.trim(), 16).unwrap() + 2];
    r.read_exact(&mut frame).unwrap();
    assert!(String::from_utf8_lossy(&frame).starts_with("event: message_start\n"));

    // Nothing more arrives…
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    let err = r.read(&mut buf).expect_err("no data after message_start");
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));

    // …until the mock is dropped, which closes the connection promptly.
    let t = Instant::now();
    drop(mock);
    assert!(t.elapsed() < Duration::from_secs(2));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(r.read(&mut buf).unwrap_or(0), 0, "EOF after drop");
}

#[test]
fn mock_tool_markers_give_those_tool_uses() {
    let mock = MockApi::start();
    let (mut s, mut r) = connect(&mock);
    let mut ask = |text: &str| -> Value {
        post(
            &mut s,
            "/v1/messages",
            &json!({"model": "m", "messages": [user(text)]}),
        );
        let msg = read_resp(&mut r, false).json();
        assert_eq!(msg["stop_reason"], "tool_use", "{msg}");
        msg["content"][0].clone()
    };
    let t = ask("RUN_TOOL: Write {\"file_path\": \"/tmp/x\", \"content\": \"hi\"}\nmore");
    assert_eq!(t["type"], "tool_use");
    assert_eq!(t["name"], "Write");
    assert_eq!(t["input"], json!({"file_path": "/tmp/x", "content": "hi"}));
    let t = ask("please ASK_QUESTIONS");
    assert_eq!(t["name"], "AskUserQuestion");
    let qs = t["input"]["questions"].as_array().unwrap();
    assert_eq!(qs[0]["question"], "Which database should we use?");
    assert_eq!(qs[0]["multiSelect"], false);
    assert_eq!(qs[1]["question"], "Which checks should run?");
    assert_eq!(qs[1]["multiSelect"], true);
    let labels: Vec<&str> = qs[1]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Unit tests", "Lint", "Browser"]);
    let t = ask("EXIT_PLAN");
    assert_eq!(t["name"], "ExitPlanMode");
    assert_eq!(t["input"], json!({"plan": "# Plan\n\n1. Do the thing"}));
    let t = ask("EDIT_FILE: /p/a.txt old words => new words");
    assert_eq!(t["name"], "Edit");
    assert_eq!(
        t["input"],
        json!({"file_path": "/p/a.txt", "old_string": "old words", "new_string": "new words"})
    );

    // A tool_result whose content is a list of text blocks is quoted, cut at 200 chars.
    let long = "x".repeat(300);
    post(
        &mut s,
        "/v1/messages",
        &json!({"model": "m", "messages": [
            user("EXIT_PLAN"),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ExitPlanMode", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                "content": [{"type": "text", "text": long}]}]},
        ]}),
    );
    let msg = read_resp(&mut r, false).json();
    assert_eq!(
        msg["content"][0]["text"],
        format!("Tool ran fine: {}", "x".repeat(200))
    );
}
