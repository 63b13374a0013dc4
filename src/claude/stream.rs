//! What the CLI prints, as types: its stream-json lines parsed into [`Event`]s, the final result as an
//! [`Outcome`] (and what a failed one means), each event as the API streams it, and the bounded line reader
//! that cuts stdout into lines without ever holding an unbounded one.

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::store::EventKind;

/// How the CLI's result begins when it has no credentials ("Not logged in · Please run /login"): a failed turn
/// whose fix is on the computer, not in the conversation.
const CLI_NOT_LOGGED_IN: &str = "Not logged in";
/// The turn error for that case: it says where the problem is and what to run there (docs/api.md, `error_kind`).
pub const NOT_LOGGED_IN: &str = "Claude Code on the computer is not logged in: on that computer, run `claude` and \
type /login (or set ANTHROPIC_API_KEY where remote-agent runs), then retry";

/// The kind of a turn's error, for clients that show some errors their own way: `not_logged_in`, or None.
pub fn error_kind(error: &str) -> Option<&'static str> {
    error.starts_with(NOT_LOGGED_IN).then_some("not_logged_in")
}

/// The final `result` line of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `success`, or what went wrong (`error_during_execution`, `error_max_turns`, …).
    pub subtype: String,
    /// The CLI's own verdict; missing counts as an error.
    pub is_error: bool,
    /// The reply (or, on some errors, the error's text).
    pub text: Option<String>,
    /// The session the run ended in.
    pub session_id: Option<String>,
    /// `total_cost_usd`.
    pub cost: Option<f64>,
    /// `num_turns`.
    pub num_turns: Option<i64>,
    /// `duration_ms`.
    pub duration_ms: Option<i64>,
    /// `errors`, when the CLI lists them.
    pub errors: Vec<String>,
}

impl Outcome {
    /// Success is decided here, from the result line, never by the exit code (docs/architecture.md, "A message,
    /// end to end").
    pub fn succeeded(&self) -> bool {
        !self.is_error && self.subtype == "success"
    }

    /// The most telling error text of a failed result.
    pub fn error_text(&self) -> String {
        if let Some(text) = self
            .text
            .as_deref()
            .filter(|t| t.starts_with(CLI_NOT_LOGGED_IN))
        {
            format!("{NOT_LOGGED_IN} (claude said: {text})")
        } else if !self.errors.is_empty() {
            self.errors.join("; ")
        } else if let Some(text) = self.text.as_deref().filter(|t| !t.is_empty()) {
            text.to_string()
        } else {
            format!("claude reported {}", self.subtype)
        }
    }
}

/// One thing the CLI said, typed. Unknown lines are kept, never fatal.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The first line: the run's session and model.
    Init {
        /// The session the run is in (new, or the one resumed).
        session_id: Option<String>,
        /// The model it uses.
        model: Option<String>,
    },
    /// A piece of the reply as it streams.
    TextDelta(String),
    /// A piece of thinking as it streams.
    ThinkingDelta(String),
    /// A complete assistant text block.
    Text(String),
    /// A complete thinking block.
    Thinking(String),
    /// A tool call.
    ToolUse {
        /// The call's id, which its result names.
        id: String,
        /// The tool (`Bash`, `Edit`, …).
        name: String,
        /// Its input, as the model gave it.
        input: Value,
    },
    /// A tool's result.
    ToolResult {
        /// The call it answers.
        tool_use_id: String,
        /// What the tool returned (text, or content blocks).
        content: Value,
        /// Whether the tool failed.
        is_error: bool,
    },
    /// The API is being retried (the whole `api_retry` line).
    Retry(Value),
    /// The final result line.
    Result(Outcome),
    /// The CLI asks the host something (`control_request`; `can_use_tool` is a permission request).
    ControlRequest {
        /// Its id, which the answer must carry.
        request_id: String,
        /// The request itself (`subtype`, and for `can_use_tool` the tool, its input, suggestions…).
        request: Value,
    },
    /// The CLI takes back a request it made (`control_cancel_request`): it must not be answered.
    ControlCancel {
        /// The request it withdraws.
        request_id: String,
    },
    /// The CLI's answer to a control request of ours (`interrupt`, `set_permission_mode`, …).
    ControlResponse {
        /// The request it answers.
        request_id: String,
        /// Whether it succeeded (`subtype` `success`).
        ok: bool,
        /// The answer, or the error's text.
        response: Value,
    },
    /// Valid JSON of a kind we do not use (kept raw).
    Other(Value),
    /// A line that is not JSON.
    Garbage(String),
}

/// Parses one stdout line into the events it holds (an assistant line may hold several blocks).
pub fn parse_line(line: &str) -> Vec<Event> {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return vec![Event::Garbage(line.to_string())];
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    match v.get("type").and_then(Value::as_str) {
        Some("system") if v.get("subtype").and_then(Value::as_str) == Some("init") => {
            vec![Event::Init {
                session_id: s(&v, "session_id"),
                model: s(&v, "model"),
            }]
        }
        Some("system") if v.get("subtype").and_then(Value::as_str) == Some("api_retry") => {
            vec![Event::Retry(v)]
        }
        Some("stream_event") => {
            let delta = &v["event"]["delta"];
            match (v["event"]["type"].as_str(), delta["type"].as_str()) {
                (Some("content_block_delta"), Some("text_delta")) => {
                    vec![Event::TextDelta(
                        delta["text"].as_str().unwrap_or("").into(),
                    )]
                }
                (Some("content_block_delta"), Some("thinking_delta")) => {
                    vec![Event::ThinkingDelta(
                        delta["thinking"].as_str().unwrap_or("").into(),
                    )]
                }
                _ => vec![],
            }
        }
        Some("assistant") => blocks(&v)
            .filter_map(|b| match b["type"].as_str() {
                Some("text") => Some(Event::Text(b["text"].as_str().unwrap_or("").into())),
                Some("thinking") => {
                    Some(Event::Thinking(b["thinking"].as_str().unwrap_or("").into()))
                }
                Some("tool_use") => Some(Event::ToolUse {
                    id: s(b, "id").unwrap_or_default(),
                    name: s(b, "name").unwrap_or_default(),
                    input: b["input"].clone(),
                }),
                _ => None,
            })
            .collect(),
        Some("user") => blocks(&v)
            .filter(|b| b["type"] == "tool_result")
            .map(|b| Event::ToolResult {
                tool_use_id: s(b, "tool_use_id").unwrap_or_default(),
                content: b["content"].clone(),
                is_error: b["is_error"].as_bool().unwrap_or(false),
            })
            .collect(),
        Some("control_request") => vec![Event::ControlRequest {
            request_id: s(&v, "request_id").unwrap_or_default(),
            request: v["request"].clone(),
        }],
        Some("control_cancel_request") => vec![Event::ControlCancel {
            request_id: s(&v, "request_id").unwrap_or_default(),
        }],
        Some("control_response") => {
            let r = &v["response"];
            let ok = r["subtype"] == "success";
            vec![Event::ControlResponse {
                request_id: s(r, "request_id").unwrap_or_default(),
                ok,
                response: if ok {
                    r["response"].clone()
                } else {
                    r["error"].clone()
                },
            }]
        }
        Some("result") => vec![Event::Result(Outcome {
            subtype: s(&v, "subtype").unwrap_or_default(),
            is_error: v["is_error"].as_bool().unwrap_or(true),
            text: s(&v, "result"),
            session_id: s(&v, "session_id"),
            cost: v["total_cost_usd"].as_f64(),
            num_turns: v["num_turns"].as_i64(),
            duration_ms: v["duration_ms"].as_i64(),
            errors: v["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        })],
        _ => vec![Event::Other(v)],
    }
}

fn blocks(v: &Value) -> impl Iterator<Item = &Value> {
    v["message"]["content"].as_array().into_iter().flatten()
}

impl Event {
    /// The event as the API streams it: a kind and its JSON data (docs/api.md, "Events"), or None for
    /// what clients are not shown.
    pub fn to_stream(&self) -> Option<(EventKind, Value)> {
        Some(match self {
            Event::TextDelta(t) => (EventKind::TextDelta, json!({ "text": t })),
            Event::ThinkingDelta(t) => (EventKind::Thinking, json!({ "text": t })),
            Event::Thinking(t) => (EventKind::Thinking, json!({ "text": t, "complete": true })),
            Event::Text(t) => (EventKind::Message, json!({ "text": t })),
            Event::ToolUse { id, name, input } => (
                EventKind::ToolUse,
                json!({ "id": id, "name": name, "input": input }),
            ),
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => (
                EventKind::ToolResult,
                json!({ "tool_use_id": tool_use_id, "content": content, "is_error": is_error }),
            ),
            Event::Retry(v) => (
                EventKind::Retry,
                json!({
                    "attempt": v["attempt"], "max_retries": v["max_retries"],
                    "delay_ms": v["retry_delay_ms"], "error": v["error"],
                }),
            ),
            Event::Result(o) => (
                EventKind::Result,
                json!({
                    "response": o.text, "session_id": o.session_id, "cost": o.cost,
                    "num_turns": o.num_turns, "is_error": !o.succeeded(),
                }),
            ),
            Event::Init { .. }
            | Event::ControlRequest { .. }
            | Event::ControlCancel { .. }
            | Event::ControlResponse { .. }
            | Event::Other(_)
            | Event::Garbage(_) => return None,
        })
    }
}

/// What [`read_line`] found.
pub(super) enum Line {
    /// A line (with its newline, unless stdout ended first) is in the buffer.
    Read,
    /// Stdout has ended.
    End,
    /// The line ran past the limit; the buffer holds its first part.
    TooLong,
}

/// Reads one line into `buf` (which it does not clear), holding at most `limit` bytes of it.
pub(super) async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                Line::End
            } else {
                Line::Read
            });
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > limit {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(Line::Read);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_typed_events() {
        let delta = r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}}"#;
        assert_eq!(parse_line(delta), vec![Event::TextDelta("Hel".into())]);
        let assistant = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"hi"},{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}]}}"#;
        let events = parse_line(assistant);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], Event::Text("hi".into()));
        let user = r#"{"type":"user","message":{"content":[{"tool_use_id":"t1","type":"tool_result","content":"ok","is_error":false}]}}"#;
        assert!(
            matches!(&parse_line(user)[0], Event::ToolResult { tool_use_id, .. } if tool_use_id == "t1")
        );
        let result = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: x","session_id":"s","total_cost_usd":0.1,"num_turns":1}"#;
        let Event::Result(o) = &parse_line(result)[0] else {
            panic!()
        };
        assert!(!o.succeeded());
        assert_eq!(o.error_text(), "API Error: x");
        let resume_fail = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["No conversation found with session ID: x"]}"#;
        let Event::Result(o) = &parse_line(resume_fail)[0] else {
            panic!()
        };
        assert!(o.error_text().starts_with("No conversation found"));
    }

    #[test]
    fn control_lines_are_typed() {
        let ask = r#"{"type":"control_request","request_id":"r1","request":{"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"touch x"}}}"#;
        let Event::ControlRequest {
            request_id,
            request,
        } = &parse_line(ask)[0]
        else {
            panic!()
        };
        assert_eq!(
            (request_id.as_str(), &request["tool_name"]),
            ("r1", &json!("Bash"))
        );
        assert_eq!(
            parse_line(r#"{"type":"control_cancel_request","request_id":"r1"}"#),
            vec![Event::ControlCancel {
                request_id: "r1".into()
            }]
        );
        let ok = r#"{"type":"control_response","response":{"subtype":"success","request_id":"i1","response":{}}}"#;
        assert!(
            matches!(&parse_line(ok)[0], Event::ControlResponse { ok: true, request_id, .. } if request_id == "i1")
        );
        let bad = r#"{"type":"control_response","response":{"subtype":"error","request_id":"i2","error":"no"}}"#;
        assert!(
            matches!(&parse_line(bad)[0], Event::ControlResponse { ok: false, response, .. } if response == "no")
        );
    }

    #[test]
    fn unknown_and_broken_lines_are_kept() {
        assert!(matches!(
            &parse_line(r#"{"type":"brand_new"}"#)[0],
            Event::Other(_)
        ));
        assert_eq!(
            parse_line("not json"),
            vec![Event::Garbage("not json".into())]
        );
        assert!(matches!(&parse_line("[1,2]")[0], Event::Other(_)));
        assert!(parse_line(r#"{"type":"assistant","message":{"content":"odd"}}"#).is_empty());
    }

    #[tokio::test]
    async fn a_line_past_the_limit_is_cut_off_not_buffered() {
        let data: &[u8] = b"short\n0123456789abcdef\nlast";
        // A reader that hands out 4 bytes at a time, so a line spans several fills.
        let mut reader = tokio::io::BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut buf, 8).await,
            Ok(Line::Read)
        ));
        assert_eq!(buf, b"short\n");
        buf.clear();
        assert!(matches!(
            read_line(&mut reader, &mut buf, 8).await,
            Ok(Line::TooLong)
        ));
        assert!(buf.len() <= 8, "held {} bytes", buf.len());
        let mut reader = tokio::io::BufReader::with_capacity(4, &b"last"[..]);
        buf.clear();
        assert!(matches!(
            read_line(&mut reader, &mut buf, 8).await,
            Ok(Line::Read)
        ));
        assert_eq!(buf, b"last");
        buf.clear();
        assert!(matches!(
            read_line(&mut reader, &mut buf, 8).await,
            Ok(Line::End)
        ));
    }
}
