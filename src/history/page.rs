//! A page of one session file's history, read backwards from a byte offset in blocks (never the whole file):
//! user text, assistant text, thinking, and tool calls paired with their results, oldest first within the page.
//!
//! Lines are chosen by their top-level `type` (`user` and `assistant`; every bookkeeping type is skipped, whatever
//! its `message.role` says). A cut last line, a line that is not JSON and a shape we do not know are skipped.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::{Value, json};

use super::read::BOOKKEEPING;

/// Bytes read at a time, from the end backwards.
const BLOCK: u64 = 256 * 1024;
/// A page reads at most this much: a stretch of bookkeeping ends the page early (with a cursor to go on from)
/// rather than reading on without bound.
const BUDGET: u64 = 32 << 20;
/// A line longer than this is skipped without being kept whole (no message of a session is that long).
const MAX_LINE: usize = 16 << 20;
/// The most characters of a text, a tool's input or its result that an item carries (it says `truncated`).
pub const MAX_TEXT: usize = 20_000;

/// One page: its items, oldest first, and the offset to read the page before it from (`None`: this page reaches
/// the start of the file).
#[derive(Debug)]
pub struct Page {
    /// `{"kind": "user"|"assistant"|"thinking"|"tool", …, "at"}`.
    pub items: Vec<Value>,
    /// Where the next (older) page ends.
    pub before: Option<u64>,
}

/// The page of the file at `path` that ends at byte `end` (a line's start, or the adopted size), with at least
/// `limit` items unless the start of the file (or the page's read budget) comes first. Bytes past `end` are never
/// read.
pub fn read(path: &Path, end: u64, limit: usize) -> std::io::Result<Page> {
    let mut file = super::read::open(path)?;
    let end = end.min(file.metadata()?.len());
    let mut items = Reverse::default();
    // The bytes of the line being assembled, newest block first: [pos, line_end).
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut part_len = 0usize;
    let mut pos = end;
    let mut line_end = end;
    let mut read = 0u64;
    while pos > 0 {
        // Out of budget, the page ends at the last line it passed (never where it began: the next page must move).
        if items.count >= limit || (read >= BUDGET && line_end < end) {
            break;
        }
        let at = pos.saturating_sub(BLOCK);
        let mut block = vec![0; (pos - at) as usize];
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut block)?;
        read += block.len() as u64;
        let mut upto = block.len();
        // Each newline in the block, from the last, ends the line after it.
        while let Some(nl) = block[..upto].iter().rposition(|&b| b == b'\n') {
            let start = at + nl as u64 + 1;
            let mut line = block[nl + 1..upto].to_vec();
            if part_len <= MAX_LINE {
                for p in parts.drain(..) {
                    line.extend_from_slice(&p);
                }
                items.line(&line);
            }
            parts.clear();
            part_len = 0;
            line_end = start;
            upto = nl;
            if items.count >= limit {
                break;
            }
        }
        if items.count >= limit {
            pos = line_end;
            break;
        }
        // What is left of the block begins a line that began earlier.
        if part_len <= MAX_LINE {
            parts.insert(0, block[..upto].to_vec());
        }
        part_len += upto;
        pos = at;
    }
    if pos == 0 && line_end > 0 {
        // The file's first line.
        if part_len <= MAX_LINE {
            let line: Vec<u8> = parts.concat();
            items.line(&line);
        }
        line_end = 0;
    }
    Ok(Page {
        items: items.finish(),
        before: (line_end > 0).then_some(line_end),
    })
}

/// Items gathered newest first, with the tool results waiting for their call.
#[derive(Default)]
struct Reverse {
    items: Vec<Option<Value>>,
    /// A result's tool_use_id → its item's index.
    results: HashMap<String, usize>,
    count: usize,
}

impl Reverse {
    fn push(&mut self, item: Value) {
        self.items.push(Some(item));
        self.count += 1;
    }

    /// Takes in one line, read backwards: its items go in newest first.
    fn line(&mut self, raw: &[u8]) {
        let Ok(text) = std::str::from_utf8(raw) else {
            return;
        };
        // Most lines are bookkeeping: not parsed at all.
        if !text.contains("\"type\":\"user\"") && !text.contains("\"type\":\"assistant\"") {
            return;
        }
        let Ok(line) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let at = line.get("timestamp").cloned().unwrap_or(Value::Null);
        if line["isSidechain"] == true {
            return;
        }
        let content = &line["message"]["content"];
        match line["type"].as_str() {
            Some("user") if line["isMeta"] != true && line["isCompactSummary"] != true => {
                self.user(content, at)
            }
            Some("assistant") => self.assistant(content, at),
            _ => {}
        }
    }

    fn user(&mut self, content: &Value, at: Value) {
        let mut text = String::new();
        let blocks = match content {
            Value::String(s) => {
                text.push_str(s);
                &[][..]
            }
            Value::Array(blocks) => &blocks[..],
            _ => return,
        };
        let mut results = Vec::new();
        for b in blocks {
            match b["type"].as_str() {
                Some("text") => {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(b["text"].as_str().unwrap_or(""));
                }
                Some("image") => text.push_str("[image]"),
                Some("tool_result") => results.push(b),
                _ => {}
            }
        }
        // Newest first: the line's last block first.
        for r in results.into_iter().rev() {
            let (result, cut) = clip(&result_text(&r["content"]));
            let mut item = json!({"kind": "tool", "name": null, "input": null, "result": result,
                "is_error": r["is_error"] == true, "at": at});
            if cut {
                item["truncated"] = json!(true);
            }
            if let Some(id) = r["tool_use_id"].as_str() {
                self.results.insert(id.to_string(), self.items.len());
            }
            self.push(item);
        }
        let t = text.trim();
        if !t.is_empty() && !BOOKKEEPING.iter().any(|b| t.starts_with(b)) {
            self.push(text_item("user", t, at));
        }
    }

    fn assistant(&mut self, content: &Value, at: Value) {
        let blocks = match content {
            Value::String(s) => return self.push(text_item("assistant", s, at)),
            Value::Array(blocks) => blocks,
            _ => return,
        };
        for b in blocks.iter().rev() {
            match b["type"].as_str() {
                Some("text") => {
                    let t = b["text"].as_str().unwrap_or("");
                    if !t.trim().is_empty() {
                        self.push(text_item("assistant", t, at.clone()));
                    }
                }
                Some("thinking") => {
                    let t = b["thinking"].as_str().unwrap_or("");
                    if !t.trim().is_empty() {
                        self.push(text_item("thinking", t, at.clone()));
                    }
                }
                Some("tool_use") => self.tool_use(b, at.clone()),
                _ => {}
            }
        }
    }

    /// A call: with its result when the result is on this page (the result's own item then goes).
    fn tool_use(&mut self, b: &Value, at: Value) {
        let input = serde_json::to_string(&b["input"]).unwrap_or_default();
        let (input, input_cut) = match input.chars().count() > MAX_TEXT {
            true => (json!(clip(&input).0), true),
            false => (b["input"].clone(), false),
        };
        let mut item = json!({"kind": "tool", "name": b["name"], "input": input, "result": null,
            "is_error": false, "at": at});
        let found = b["id"]
            .as_str()
            .and_then(|id| self.results.remove(id))
            .and_then(|i| self.items.get_mut(i)?.take());
        if let Some(result) = found {
            item["result"] = result["result"].clone();
            item["is_error"] = result["is_error"].clone();
            if result["truncated"] == true {
                item["truncated"] = json!(true);
            }
            self.count -= 1;
        }
        if input_cut {
            item["truncated"] = json!(true);
        }
        self.push(item);
    }

    fn finish(self) -> Vec<Value> {
        self.items.into_iter().rev().flatten().collect()
    }
}

fn text_item(kind: &str, text: &str, at: Value) -> Value {
    let (text, cut) = clip(text);
    let mut item = json!({"kind": kind, "text": text, "at": at});
    if cut {
        item["truncated"] = json!(true);
    }
    item
}

/// A tool result's content as text: a string, or its text blocks joined.
fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().unwrap_or("").to_string(),
                Some("image") => "[image]".into(),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// At most [`MAX_TEXT`] characters of `s`, and whether it was cut.
fn clip(s: &str) -> (String, bool) {
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => (s[..i].to_string(), true),
        None => (s.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &[String], tail: &str) -> (tempfile::TempDir, std::path::PathBuf, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        text.push_str(tail);
        std::fs::write(&path, &text).unwrap();
        (dir, path, text.len() as u64)
    }

    fn kinds(items: &[Value]) -> Vec<String> {
        items
            .iter()
            .map(|i| {
                format!(
                    "{}:{}",
                    i["kind"].as_str().unwrap(),
                    i["text"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn a_session_file_swapped_for_a_symlink_is_not_read() {
        let (dir, path, size) = write(
            &[
                r#"{"type":"user","message":{"role":"user","content":"hi"},"timestamp":"t"}"#
                    .into(),
            ],
            "",
        );
        assert_eq!(read(&path, size, 10).unwrap().items.len(), 1);
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(read(&link, size, 10).is_err(), "read through a symlink");
    }

    #[test]
    fn pages_walk_back_to_the_start_once_and_pair_tools() {
        let mut lines = vec![];
        for i in 0..10 {
            lines.push(format!(
                r#"{{"type":"user","message":{{"role":"user","content":"q{i}"}},"timestamp":"t{i}"}}"#
            ));
            lines.push(format!(
                r#"{{"type":"api-request-blob","message":{{"role":"user","content":"{}"}}}}"#,
                "x".repeat(300_000)
            ));
            lines.push(format!(
                r#"{{"type":"assistant","message":{{"content":[{{"type":"thinking","thinking":"hm"}},{{"type":"tool_use","id":"t{i}","name":"Bash","input":{{"command":"ls"}}}}]}}}}"#
            ));
            lines.push(format!(
                r#"{{"type":"user","message":{{"content":[{{"type":"tool_result","tool_use_id":"t{i}","content":"out{i}"}}]}}}}"#
            ));
            lines.push(format!(r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"a{i}"}}]}}}}"#));
        }
        let (_d, path, size) = write(&lines, r#"{"type":"assistant","message":{"con"#);
        let mut all = vec![];
        let mut end = size;
        let mut pages = 0;
        loop {
            let p = read(&path, end, 3).unwrap();
            pages += 1;
            let mut items = p.items;
            items.extend(all);
            all = items;
            match p.before {
                Some(b) => end = b,
                None => break,
            }
        }
        assert!(pages > 3);
        // Every line once: each prompt, reply and result, however the pages cut the calls from their results.
        let texts = kinds(&all);
        for i in 0..10 {
            for want in [format!("user:q{i}"), format!("assistant:a{i}")] {
                assert_eq!(
                    texts.iter().filter(|t| **t == want).count(),
                    1,
                    "{want}: {texts:?}"
                );
            }
            let out = format!("out{i}");
            assert_eq!(
                all.iter().filter(|t| t["result"] == out.as_str()).count(),
                1
            );
        }
        assert_eq!(all.iter().filter(|t| t["name"] == "Bash").count(), 10);
        assert_eq!(kinds(&all[..2]), ["user:q0", "thinking:hm"]);
        assert_eq!(texts.last().unwrap(), "assistant:a9");
        // On one page, each call carries its result.
        let whole = read(&path, size, 100).unwrap();
        assert_eq!(whole.before, None);
        assert_eq!(whole.items.len(), 40);
        let first = kinds(&whole.items[..4]);
        assert_eq!(first, ["user:q0", "thinking:hm", "tool:", "assistant:a0"]);
        assert_eq!(whole.items[2]["result"], "out0");
        assert_eq!(whole.items[2]["input"]["command"], "ls");
    }

    #[test]
    fn a_stretch_without_messages_and_a_giant_line_end_pages_early_but_the_walk_goes_on() {
        let user = |t: &str| format!(r#"{{"type":"user","message":{{"content":"{t}"}}}}"#);
        let mut lines = vec![user("first")];
        // A line longer than a page's whole budget, then more bookkeeping than the budget.
        lines.push(format!(
            r#"{{"type":"user","message":{{"content":"{}"}}}}"#,
            "g".repeat((BUDGET + (1 << 20)) as usize)
        ));
        let filler = format!(
            r#"{{"type":"api-request-blob","message":{{"role":"user","content":"{}"}}}}"#,
            "f".repeat(8000)
        );
        for _ in 0..(BUDGET as usize / 8000 + 100) {
            lines.push(filler.clone());
        }
        lines.push(user("last"));
        let (_d, path, size) = write(&lines, "");
        let mut end = size;
        let mut seen = vec![];
        for _ in 0..10 {
            let p = read(&path, end, 5).unwrap();
            seen.extend(kinds(&p.items));
            match p.before {
                Some(b) => {
                    assert!(b < end, "no progress");
                    end = b;
                }
                None => break,
            }
        }
        assert_eq!(seen, ["user:last", "user:first"]);
    }

    #[test]
    fn huge_texts_are_cut_and_said_so() {
        let long = "y".repeat(MAX_TEXT + 10);
        let lines = [format!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"{long}"}}]}}}}"#
        )];
        let (_d, path, size) = write(&lines, "");
        let p = read(&path, size, 10).unwrap();
        assert_eq!(p.before, None);
        assert_eq!(p.items[0]["truncated"], true);
        assert_eq!(p.items[0]["text"].as_str().unwrap().len(), MAX_TEXT);
    }
}
