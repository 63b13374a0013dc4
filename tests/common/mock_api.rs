//! A tiny mock of the Anthropic Messages API for integration tests.
//!
//! It speaks just enough HTTP/1.1 (std::net + one thread per connection, no
//! async runtime) for the real Claude Code CLI to talk to it through
//! `ANTHROPIC_BASE_URL`.
//!
//! # API
//! - [`MockApi::start`] binds `127.0.0.1:0` and serves on background threads
//!   until the value is dropped. Dropping it stops the accept loop and shuts
//!   down every open connection (including hung ones), so no thread blocks
//!   forever.
//! - [`MockApi::base_url`] → `http://127.0.0.1:PORT` (no trailing slash).
//! - [`MockApi::requests`] → every JSON body received on `POST /v1/messages`
//!   (query strings such as `?beta=true` are tolerated), in arrival order.
//! - [`MockApi::log`] → one [`Logged`] entry (method, path, headers, raw body)
//!   per HTTP request of any kind, in arrival order; useful for debugging.
//!
//! # Behaviour of `POST /v1/messages`
//! - A structured-output request (`output_config.format.type ==
//!   "json_schema"`; the CLI's once-per-session title call asks for
//!   `{"title": string}` this way) gets text holding JSON that fits the schema
//!   (`{"title":"Mock session title"}`), whatever its prompt says.
//!
//! Otherwise the reply depends on the text of the **last `user` message** of
//! the request (its text blocks minus `<system-reminder>` blocks, joined with
//! `\n`):
//! - the last user content holds a `tool_result` block → text
//!   `Tool ran fine: <the tool_result's text, first 200 chars>` (just
//!   `Tool ran fine.` when that text is empty), stop_reason `end_turn`; so a
//!   test sees what the tool returned (a denial's message, the answers to
//!   questions, …) in the final reply; text blocks after the last
//!   `tool_result` (other than `<system-reminder>`s and the CLI's
//!   `[Request interrupted …]` note) are a new prompt instead, decided as
//!   below (the CLI merges the next prompt into the user message that holds
//!   an interrupted turn's tool_result);
//! - the text contains `RUN_TOOL: <ToolName> <json>` (the JSON object is the
//!   rest of that line) → one `tool_use` block for that tool with that input,
//!   stop_reason `tool_use`; the markers below are shorthands of the same kind:
//! - `ASK_QUESTIONS` → `AskUserQuestion` with two questions ([`QUESTION_DB`],
//!   single-select SQLite/Postgres; [`QUESTION_CHECKS`], multi-select Unit
//!   tests/Lint/Browser);
//! - `EXIT_PLAN` → `ExitPlanMode` with `{"plan": "# Plan\n\n1. Do the thing"}`;
//! - `EDIT_FILE: <path> <old> => <new>` (rest of that line) → `Edit` with
//!   `{"file_path", "old_string", "new_string"}` (the CLI wants an absolute
//!   path, and refuses to edit a file it has not read in the session);
//! - the text contains `RUN_BASH: <command>` (command = rest of that line) →
//!   one `tool_use` block for tool `Bash` with input
//!   `{"command": "<command>", "description": "run"}`, stop_reason `tool_use`;
//!
//! The markers are checked in that order (`RUN_TOOL`, `ASK_QUESTIONS`,
//! `EXIT_PLAN`, `EDIT_FILE`, `RUN_BASH`, then `HANG`); tool ids are
//! `toolu_mock_N`.
//! - the text contains `HANG` → with `"stream": true` only `message_start` is
//!   sent, then nothing until the client disconnects or the mock is dropped
//!   (without streaming no response is sent at all);
//! - otherwise → text `mock reply: <last user text trimmed>`, stop_reason
//!   `end_turn`.
//!
//! With `"stream": true` the answer is `text/event-stream` (sent with
//! `Transfer-Encoding: chunked`, so the connection can be kept alive) made of
//! `event: X\ndata: {json}\n\n` frames: `message_start` (id `msg_mock_N`, the
//! request's model, empty content, usage), `content_block_start`, a few
//! `content_block_delta` (`text_delta` or `input_json_delta`),
//! `content_block_stop`, `message_delta` (stop_reason, usage) and
//! `message_stop`. Without streaming one JSON message object is returned.
//!
//! # Other endpoints
//! - `POST /v1/messages/count_tokens` → `{"input_tokens": 10}`;
//! - any `GET` → `200 {}`; any `HEAD` → `200` without a body (the CLI sends
//!   `HEAD /` first, on its own connection);
//! - anything else → `404 {"type":"error","error":{"type":"not_found_error",…}}`.
//!
//! Request bodies may use `Content-Length` or `Transfer-Encoding: chunked`;
//! `Expect: 100-continue` is honoured; several requests per connection
//! (keep-alive) are served until the client closes or sends
//! `Connection: close`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{Value, json};

/// One HTTP request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Index of the TCP connection it came on (0-based, in accept order).
    pub conn: usize,
    pub method: String,
    /// The request target, query string included (e.g. `/v1/messages?beta=true`).
    pub path: String,
    /// Header names are lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Logged {
    /// First header value with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    next_req: AtomicUsize,
    next_msg: AtomicUsize,
    next_conn: AtomicUsize,
    requests: Mutex<Vec<Value>>,
    log: Mutex<Vec<Logged>>,
    /// Clones of the open connections, so that `Drop` can shut them down.
    conns: Mutex<HashMap<usize, TcpStream>>,
}

/// A running mock server; see the module docs.
pub struct MockApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl MockApi {
    /// Bind `127.0.0.1:0` and start serving on background threads.
    pub fn start() -> MockApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("mock_api: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("mock_api: local_addr");
        let shared = Arc::new(Shared::default());
        let sh = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("mock-api-accept".into())
            .spawn(move || accept_loop(listener, sh))
            .expect("mock_api: spawn accept thread");
        MockApi {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every JSON body received on `POST /v1/messages`, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Every HTTP request received (any method and path), in order.
    pub fn log(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a throw-away connection.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        // Unblock every connection thread (reads return EOF, writes fail).
        for (_, s) in self.shared.conns.lock().unwrap().drain() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            shared.conns.lock().unwrap().insert(id, clone);
        }
        // Drop may have drained `conns` between the check above and the insert.
        if shared.stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            break;
        }
        let sh = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name(format!("mock-api-conn-{id}"))
            .spawn(move || {
                let _ = serve_connection(stream, id, &sh);
                sh.conns.lock().unwrap().remove(&id);
            });
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn serve_connection(stream: TcpStream, conn: usize, shared: &Shared) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(req) = read_request(&mut reader, &mut out)? else {
            return Ok(()); // client closed
        };
        shared.log.lock().unwrap().push(Logged {
            conn,
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
        });
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let keep_open = handle(&req, &mut out, &mut reader, shared)?;
        if close || !keep_open {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Read one request; `Ok(None)` on a clean EOF before the request line.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    out: &mut TcpStream,
) -> io::Result<Option<Request>> {
    let mut line = String::new();
    // Tolerate stray empty lines between requests.
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();

    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in headers",
            ));
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        out.flush()?;
    }
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        req.body = read_chunked(reader)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        if reader.read_line(&mut size_line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "eof in chunk size",
            ));
        }
        let size_str = size_line.trim().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn write_json(
    out: &mut TcpStream,
    status: u16,
    reason: &str,
    body: &Value,
    req_id: &str,
) -> io::Result<()> {
    let body = serde_json::to_vec(body).expect("serialize");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nrequest-id: {req_id}\r\nconnection: keep-alive\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(&body)?;
    out.flush()
}

/// Write one SSE frame as one HTTP chunk.
fn write_sse(out: &mut TcpStream, event: &str, data: &Value) -> io::Result<()> {
    let frame = format!("event: {event}\ndata: {data}\n\n");
    write!(out, "{:x}\r\n{frame}\r\n", frame.len())?;
    out.flush()
}

/// Handle one request; returns whether the connection may serve another one.
fn handle(
    req: &Request,
    out: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    shared: &Shared,
) -> io::Result<bool> {
    let req_id = format!(
        "req_mock_{}",
        shared.next_req.fetch_add(1, Ordering::SeqCst) + 1
    );
    let path = req.path.split('?').next().unwrap_or("");
    let path = path.trim_end_matches('/');

    if req.method == "HEAD" {
        // No body may follow a HEAD response.
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nrequest-id: {req_id}\r\nconnection: keep-alive\r\n\r\n"
        );
        out.write_all(head.as_bytes())?;
        out.flush()?;
        return Ok(true);
    }
    if req.method == "GET" {
        write_json(out, 200, "OK", &json!({}), &req_id)?;
        return Ok(true);
    }
    if req.method == "POST" && path == "/v1/messages/count_tokens" {
        write_json(out, 200, "OK", &json!({"input_tokens": 10}), &req_id)?;
        return Ok(true);
    }
    if !(req.method == "POST" && path == "/v1/messages") {
        let err = json!({"type": "error", "error": {"type": "not_found_error",
            "message": format!("mock: no route for {} {}", req.method, req.path)}});
        write_json(out, 404, "Not Found", &err, &req_id)?;
        return Ok(true);
    }

    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            let err = json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": format!("mock: body is not JSON: {e}")}});
            write_json(out, 400, "Bad Request", &err, &req_id)?;
            return Ok(true);
        }
    };
    shared.requests.lock().unwrap().push(body.clone());
    let n = shared.next_msg.fetch_add(1, Ordering::SeqCst) + 1;

    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-mock")
        .to_string();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let msg_id = format!("msg_mock_{n}");
    let reply = decide(&body, n);

    if !stream {
        if matches!(reply, Reply::Hang) {
            wait_for_close(reader, shared);
            return Ok(false);
        }
        let (content, stop) = match &reply {
            Reply::Text(t) => (json!([{"type": "text", "text": t}]), "end_turn"),
            Reply::Tool { id, name, input } => (
                json!([{"type": "tool_use", "id": id, "name": name, "input": input}]),
                "tool_use",
            ),
            Reply::Hang => unreachable!(),
        };
        let msg = json!({
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": usage(10, 5),
        });
        write_json(out, 200, "OK", &msg, &req_id)?;
        return Ok(true);
    }

    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nrequest-id: {req_id}\r\nconnection: keep-alive\r\n\r\n"
    );
    out.write_all(head.as_bytes())?;
    write_sse(
        out,
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage(10, 1),
        }}),
    )?;

    let (stop, out_tokens) = match &reply {
        Reply::Hang => {
            wait_for_close(reader, shared);
            return Ok(false);
        }
        Reply::Text(t) => {
            write_sse(
                out,
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
            )?;
            for piece in split3(t) {
                write_sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "text_delta", "text": piece}}),
                )?;
            }
            ("end_turn", 5)
        }
        Reply::Tool { id, name, input } => {
            write_sse(
                out,
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
            )?;
            let partial = input.to_string();
            for piece in split3(&partial) {
                write_sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece}}),
                )?;
            }
            ("tool_use", 7)
        }
    };
    write_sse(
        out,
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    )?;
    write_sse(
        out,
        "message_delta",
        &json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": out_tokens}}),
    )?;
    write_sse(out, "message_stop", &json!({"type": "message_stop"}))?;
    out.write_all(b"0\r\n\r\n")?;
    out.flush()?;
    Ok(true)
}

fn usage(input: u64, output: u64) -> Value {
    json!({"input_tokens": input, "output_tokens": output,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

/// Block until the client closes the connection or the mock is dropped
/// (Drop shuts the socket down, which makes the read return).
fn wait_for_close(reader: &mut BufReader<TcpStream>, shared: &Shared) {
    let mut buf = [0u8; 1024];
    while !shared.stop.load(Ordering::SeqCst) {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Split a string into (up to) three non-empty pieces on char boundaries.
fn split3(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return vec![s.to_string()];
    }
    let step = chars.len().div_ceil(3);
    chars.chunks(step).map(|c| c.iter().collect()).collect()
}

/// A small value that satisfies a JSON schema's `type`/`properties`
/// (strings become "Mock session title" for `title`, "mock" otherwise).
fn sample_for_schema(schema: &Value) -> Value {
    sample_named(schema, "")
}

fn sample_named(schema: &Value, name: &str) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut obj = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    obj.insert(k.clone(), sample_named(v, k));
                }
            }
            Value::Object(obj)
        }
        Some("array") => json!([]),
        Some("integer") | Some("number") => json!(0),
        Some("boolean") => json!(false),
        Some("null") => Value::Null,
        _ if name == "title" => json!("Mock session title"),
        _ => json!("mock"),
    }
}

enum Reply {
    Text(String),
    Tool {
        id: String,
        name: String,
        input: Value,
    },
    Hang,
}

fn decide(body: &Value, n: usize) -> Reply {
    // Structured output (the CLI's session-title call asks for
    // `{"title": string}` through `output_config.format`): answer with JSON
    // text that fits the schema, whatever the prompt says.
    let format = body.pointer("/output_config/format");
    if format.and_then(|f| f.get("type")).and_then(Value::as_str) == Some("json_schema") {
        let schema = format.and_then(|f| f.get("schema")).unwrap_or(&Value::Null);
        return Reply::Text(sample_for_schema(schema).to_string());
    }
    let last_user = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|msgs| {
            msgs.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        });
    let content = last_user.and_then(|m| m.get("content"));
    let blocks: Vec<&Value> = match content {
        Some(Value::Array(a)) => a.iter().collect(),
        _ => Vec::new(),
    };
    let results: Vec<&Value> = blocks
        .iter()
        .copied()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .collect();
    // The CLI merges a new prompt into the user message that holds the tool_result of an interrupted turn:
    // then the prompt's text (after the last tool_result, minus reminders and the interruption note) decides.
    let after_results: Vec<&str> = blocks
        .iter()
        .rev()
        .take_while(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .filter(|t| {
            let t = t.trim_start();
            !t.starts_with("<system-reminder>") && !t.starts_with("[Request interrupted")
        })
        .collect();
    if !results.is_empty() && after_results.is_empty() {
        let said: String = results
            .iter()
            .map(|b| tool_result_text(b))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .chars()
            .take(200)
            .collect();
        return Reply::Text(if said.is_empty() {
            "Tool ran fine.".to_string()
        } else {
            format!("Tool ran fine: {said}")
        });
    }
    let text = match content {
        Some(Value::String(s)) => s.clone(),
        _ if !results.is_empty() => after_results
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"),
        _ => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let tool = |name: &str, input: Value| Reply::Tool {
        id: format!("toolu_mock_{n}"),
        name: name.to_string(),
        input,
    };
    if let Some(rest) = marker_line(&text, "RUN_TOOL:") {
        let (name, input) = rest.split_once(char::is_whitespace).unwrap_or((rest, "{}"));
        let input = serde_json::from_str(input.trim())
            .unwrap_or_else(|e| panic!("mock_api: RUN_TOOL input is not JSON ({e}): {input}"));
        return tool(name, input);
    }
    if text.contains("ASK_QUESTIONS") {
        return tool("AskUserQuestion", ask_questions_input());
    }
    if text.contains("EXIT_PLAN") {
        return tool("ExitPlanMode", json!({"plan": EXIT_PLAN_TEXT}));
    }
    if let Some(rest) = marker_line(&text, "EDIT_FILE:") {
        let (path, change) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let (old, new) = change.split_once(" => ").unwrap_or((change, ""));
        return tool(
            "Edit",
            json!({"file_path": path, "old_string": old.trim(), "new_string": new.trim()}),
        );
    }
    if let Some(command) = marker_line(&text, "RUN_BASH:") {
        return tool("Bash", json!({"command": command, "description": "run"}));
    }
    if text.contains("HANG") {
        return Reply::Hang;
    }
    Reply::Text(format!("mock reply: {}", text.trim()))
}

/// The first question of `ASK_QUESTIONS` (single-select: SQLite, Postgres).
pub const QUESTION_DB: &str = "Which database should we use?";
/// The second question of `ASK_QUESTIONS` (multi-select: Unit tests, Lint, Browser).
pub const QUESTION_CHECKS: &str = "Which checks should run?";
/// The plan `EXIT_PLAN` proposes.
pub const EXIT_PLAN_TEXT: &str = "# Plan\n\n1. Do the thing";

/// The `AskUserQuestion` input of `ASK_QUESTIONS`.
pub fn ask_questions_input() -> Value {
    json!({"questions": [
        {"question": QUESTION_DB, "header": "Database", "multiSelect": false, "options": [
            {"label": "SQLite", "description": "One file, no server"},
            {"label": "Postgres", "description": "A server of its own"},
        ]},
        {"question": QUESTION_CHECKS, "header": "Checks", "multiSelect": true, "options": [
            {"label": "Unit tests", "description": "cargo test"},
            {"label": "Lint", "description": "clippy"},
            {"label": "Browser", "description": "the web tests"},
        ]},
    ]})
}

/// The rest of the line after `marker`, trimmed, if the text holds it.
fn marker_line<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let pos = text.find(marker)?;
    Some(
        text[pos + marker.len()..]
            .lines()
            .next()
            .unwrap_or("")
            .trim(),
    )
}

/// A `tool_result` block's text: its `content` string, or its text blocks joined.
fn tool_result_text(block: &Value) -> String {
    match block.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}
