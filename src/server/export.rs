//! `GET /api/conversations/{id}/export?format=markdown|json`: a whole conversation as a download, streamed a page
//! of turns at a time so that a long conversation is never held in memory whole.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::App;
use super::conversations::{event_message, find_conversation};
use super::respond::{Body, ChannelBody, error, query_param};
use std::sync::Arc;

use crate::store::{Conversation, Store, Turn, TurnStatus};

/// Turns read from the store per page.
const PAGE: usize = 20;

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Markdown,
    Json,
}

pub(super) fn export(app: &App, req: &Request<Incoming>, id: &str) -> Response<Body> {
    let conversation = match find_conversation(app, id) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let format = match query_param(req.uri().query(), "format").as_deref() {
        None | Some("markdown" | "md") => Format::Markdown,
        Some("json") => Format::Json,
        Some(_) => return error(StatusCode::BAD_REQUEST, "format must be markdown or json"),
    };
    let (content_type, extension) = match format {
        Format::Markdown => ("text/markdown; charset=utf-8", "md"),
        Format::Json => ("application/json", "json"),
    };
    let filename = format!("{}.{extension}", file_stem(&conversation));
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(pump(app.store.clone(), conversation, format, tx));
    let mut resp = Response::new(http_body_util::BodyExt::boxed(ChannelBody(rx)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Writes the export into the response a page at a time until the end or until the client goes away.
async fn pump(
    store: Arc<Store>,
    conversation: Conversation,
    format: Format,
    tx: mpsc::Sender<Bytes>,
) {
    let head = match format {
        Format::Markdown => markdown_head(&conversation),
        Format::Json => format!(r#"{{"conversation":{},"turns":["#, json!(conversation)),
    };
    if tx.send(Bytes::from(head)).await.is_err() {
        return;
    }
    let mut after: Option<String> = None;
    let mut number = 0usize;
    loop {
        let page = match page(&store, &conversation.id, after.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                // The status has gone; a cut-short body is what the client can notice.
                tracing::warn!("export of {}: {e}", conversation.id);
                return;
            }
        };
        let Some((last, _)) = page.last() else { break };
        after = Some(last.id.clone());
        let mut chunk = String::new();
        for (turn, messages) in &page {
            number += 1;
            match format {
                Format::Markdown => markdown_turn(&mut chunk, number, turn, messages),
                Format::Json => {
                    if number > 1 {
                        chunk.push(',');
                    }
                    let mut t = json!(turn);
                    t["error_kind"] =
                        json!(turn.error.as_deref().and_then(crate::claude::error_kind));
                    t["events"] = Value::Array(messages.clone());
                    chunk.push_str(&t.to_string());
                }
            }
        }
        if tx.send(Bytes::from(chunk)).await.is_err() {
            return;
        }
        if page.len() < PAGE {
            break;
        }
    }
    if format == Format::Json {
        let _ = tx.send(Bytes::from_static(b"]}")).await;
    }
}

/// The next page of turns after `after`, each with what its transcript shows.
fn page(
    store: &Store,
    conversation_id: &str,
    after: Option<&str>,
) -> rusqlite::Result<Vec<(Turn, Vec<Value>)>> {
    let turns = store.turns_after(conversation_id, after, PAGE)?;
    let ids: Vec<&str> = turns.iter().map(|t| t.id.as_str()).collect();
    let events = store.transcript_events(&ids)?;
    let mut out = Vec::with_capacity(turns.len());
    for turn in &turns {
        let mut messages: Vec<Value> = events
            .iter()
            .filter(|(t, _)| *t == turn.id)
            .filter_map(|(_, e)| event_message(e))
            .collect();
        if !matches!(
            turn.status,
            TurnStatus::Succeeded | TurnStatus::Queued | TurnStatus::Running
        ) && let Some(text) = store.partial_text(&turn.id)?
        {
            messages.push(json!({"type": "assistant", "text": text, "partial": true}));
        }
        out.push((turn.clone(), messages));
    }
    Ok(out)
}

/// The download's name without its extension: the title's letters, digits, `-` and `_`, runs of anything else
/// made one `-`; the conversation's id when nothing is left.
fn file_stem(c: &Conversation) -> String {
    let source = c.title.as_deref().unwrap_or("");
    let mut stem = String::new();
    for ch in source.chars() {
        if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
            stem.push(ch);
        } else if !stem.is_empty() && !stem.ends_with('-') {
            stem.push('-');
        }
        if stem.len() >= 60 {
            break;
        }
    }
    let stem = stem.trim_matches('-');
    if stem.is_empty() {
        // Ids are letters, digits, `_` and `-` (checked on creation).
        format!("conversation-{}", c.id)
    } else {
        stem.to_string()
    }
}

fn markdown_head(c: &Conversation) -> String {
    let title = c
        .title
        .as_deref()
        .or(c.first_message.as_deref())
        .map_or_else(|| format!("Conversation {}", c.id), one_line);
    let mut s = format!("# {title}\n\n");
    s.push_str(&format!("- Project: `{}`\n", c.project.replace('`', "'")));
    s.push_str(&format!("- Created: {}\n", c.created_at));
    s.push_str(&format!("- Updated: {}\n", c.updated_at));
    if let Some(session) = &c.session_id {
        s.push_str(&format!("- Session: `{session}`\n"));
    }
    s.push_str(&format!(
        "- Turns: {} · Total cost: ${:.4}\n",
        c.turn_count, c.total_cost_usd
    ));
    s
}

/// A title on one line, at most 120 characters.
fn one_line(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

fn markdown_turn(out: &mut String, number: usize, turn: &Turn, messages: &[Value]) {
    out.push_str(&format!("\n## Turn {number} · {}\n\n", turn.created_at));
    out.push_str("**You:**\n\n");
    out.push_str(&fenced("text", &turn.prompt));
    for m in messages {
        match m["type"].as_str() {
            Some("assistant") => {
                let partial = m["partial"] == true;
                out.push_str(if partial {
                    "\n**Claude** (cut short):\n\n"
                } else {
                    "\n**Claude:**\n\n"
                });
                out.push_str(m["text"].as_str().unwrap_or("").trim_end());
                out.push('\n');
            }
            Some("thinking") => {
                out.push_str("\n<details><summary>Thinking</summary>\n\n");
                out.push_str(&fenced("text", m["text"].as_str().unwrap_or("")));
                out.push_str("\n</details>\n");
            }
            Some("tool_use") => {
                let name = m["name"].as_str().unwrap_or("tool");
                out.push_str(&format!("\n**Tool call: {}**\n\n", name.replace('*', "")));
                let input = serde_json::to_string_pretty(&m["input"]).unwrap_or_default();
                out.push_str(&fenced("json", &input));
            }
            Some("tool_result") => {
                let label = if m["is_error"] == true {
                    "Tool error"
                } else {
                    "Tool result"
                };
                out.push_str(&format!("\n**{label}:**\n\n"));
                out.push_str(&fenced("text", &result_text(&m["content"])));
            }
            _ => {}
        }
    }
    out.push_str(&format!("\n*Status: {}", turn.status));
    if let Some(cost) = turn.cost {
        out.push_str(&format!(" · cost ${cost:.4}"));
    }
    if let Some(ms) = turn.duration_ms {
        out.push_str(&format!(" · {:.1} s", ms as f64 / 1000.0));
    }
    out.push_str("*\n");
    if let Some(e) = &turn.error {
        out.push_str("\n**Error:**\n\n");
        out.push_str(&fenced("text", e));
    }
}

/// A tool result's text: a string as it is, a list of blocks as their texts, anything else as JSON.
fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["text"].as_str() {
                Some(t) => t.to_string(),
                None => b.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `text` in a fenced block whose fence is longer than any run of backticks inside it, so that nothing in the
/// text can close it early.
fn fenced(info: &str, text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for ch in text.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat((longest + 1).max(3));
    let body = text.trim_end_matches('\n');
    format!("{fence}{info}\n{body}\n{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_outlasts_any_backtick_run_inside() {
        assert_eq!(fenced("text", "hi"), "```text\nhi\n```\n");
        assert_eq!(
            fenced("text", "a\n```\nb\n`````x"),
            "``````text\na\n```\nb\n`````x\n``````\n"
        );
    }
}
