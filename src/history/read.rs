//! Reading what a listing needs from one session file without loading it: a bounded head (the working directory,
//! the first real prompt) and a bounded tail (titles, the last activity), tolerating a truncated last line and a
//! file that grows while it is read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// Bytes read from the start of a file.
pub const HEAD: u64 = 64 * 1024;
/// Bytes read from the end of a file.
pub const TAIL: u64 = 64 * 1024;
/// The longest title kept (characters).
const MAX_TITLE: usize = 200;

/// What a listing says about one session file.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The session id (the file's stem, a UUID).
    pub id: String,
    /// The working directory the session ran in, as its first line carrying one says.
    pub cwd: PathBuf,
    /// A custom title, else the AI title, else the summary, else the first real user prompt.
    pub title: Option<String>,
    /// The last line's timestamp, else the file's mtime, in milliseconds since the epoch.
    pub last_activity_ms: i64,
    /// User and assistant lines: exact when the whole file fit in the head and tail, else estimated.
    pub messages: u64,
    /// Whether `messages` is an exact count.
    pub messages_exact: bool,
    /// The file's size in bytes.
    pub size: u64,
}

/// The fields of a line we look at (every other field, and a line we cannot parse, is ignored).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
    cwd: Option<String>,
    timestamp: Option<String>,
    #[serde(rename = "isMeta")]
    is_meta: Option<bool>,
    #[serde(rename = "isSidechain")]
    is_sidechain: Option<bool>,
    #[serde(rename = "isCompactSummary")]
    is_compact_summary: Option<bool>,
    message: Option<Message>,
    #[serde(rename = "customTitle")]
    custom_title: Option<String>,
    #[serde(rename = "aiTitle")]
    ai_title: Option<String>,
    summary: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Message {
    content: Option<serde_json::Value>,
}

/// Titles by rank: the highest rank found wins, the latest line within a rank.
#[derive(Default)]
struct Titles {
    custom: Option<String>,
    ai: Option<String>,
    summary: Option<String>,
}

impl Titles {
    fn see(&mut self, line: &Line) {
        let clean = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(clip)
        };
        match line.kind.as_deref() {
            Some("custom-title") => self.custom = clean(&line.custom_title).or(self.custom.take()),
            Some("ai-title") => self.ai = clean(&line.ai_title).or(self.ai.take()),
            Some("summary") => self.summary = clean(&line.summary).or(self.summary.take()),
            _ => {}
        }
    }
    fn best(self) -> Option<String> {
        self.custom.or(self.ai).or(self.summary)
    }
}

fn clip(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_TITLE) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// How the text of a `user` line that is no prompt begins: a slash command's bookkeeping.
pub(super) const BOOKKEEPING: [&str; 5] = [
    "<command-name>",
    "<command-message>",
    "<local-command-",
    "<command-args>",
    "Caveat:",
];

/// The text of a real user prompt: a `user` line, not meta, not a sidechain or a compaction summary, whose content
/// is text (not a tool result) and not a slash command's bookkeeping.
fn prompt(line: &Line) -> Option<String> {
    if line.kind.as_deref() != Some("user")
        || line.is_meta == Some(true)
        || line.is_sidechain == Some(true)
        || line.is_compact_summary == Some(true)
    {
        return None;
    }
    let text = match line.message.as_ref()?.content.as_ref()? {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(blocks) => {
            let mut text = String::new();
            for b in blocks {
                match b.get("type").and_then(|t| t.as_str()) {
                    Some("text") => {
                        text.push_str(b.get("text").and_then(|t| t.as_str()).unwrap_or(""))
                    }
                    Some("tool_result") => return None,
                    _ => {}
                }
            }
            text
        }
        _ => return None,
    };
    let t = text.trim();
    if t.is_empty() || BOOKKEEPING.iter().any(|b| t.starts_with(b)) {
        return None;
    }
    Some(clip(t))
}

fn is_message(line: &Line) -> bool {
    matches!(line.kind.as_deref(), Some("user" | "assistant"))
}

/// Reads up to `len` bytes at `at` (fewer at the end of the file).
fn read_at(file: &mut File, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(at))?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The complete lines of a buffer, raw; `partial_start` drops the first (it began before the buffer). A last line
/// without its newline is offered too: it fails to parse if it was cut.
fn raw_lines(buf: &[u8], partial_start: bool) -> Vec<&str> {
    let mut parts = buf.split(|&b| b == b'\n');
    if partial_start {
        parts.next();
    }
    // JSON is UTF-8; a line that is not (cut inside a character) is no line of ours.
    parts
        .filter(|l| !l.is_empty())
        .filter_map(|l| std::str::from_utf8(l).ok())
        .collect()
}

/// What a line's text says of its top-level type, before parsing it: most lines (request blobs, bookkeeping) are
/// of no interest, and parsing every byte of them would cost more than reading them. The CLI writes compact JSON,
/// in which a string's quotes are escaped, so these spellings appear only as a key and its value; the parse that
/// follows confirms the type is the top-level one.
const INTERESTING: [&str; 5] = [
    "\"type\":\"user\"",
    "\"type\":\"assistant\"",
    "\"type\":\"custom-title\"",
    "\"type\":\"ai-title\"",
    "\"type\":\"summary\"",
];

/// Only the top-level type, every other field skipped without being kept.
#[derive(Deserialize)]
struct KindOnly {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Only the timestamp.
#[derive(Deserialize)]
struct Stamp {
    timestamp: Option<String>,
}

/// What the lines read say, gathered line by line.
#[derive(Default)]
struct Gathered {
    cwd: Option<PathBuf>,
    first_prompt: Option<String>,
    titles: Titles,
    messages: u64,
}

impl Gathered {
    fn see(&mut self, text: &str, head: bool) {
        let want_cwd = head && self.cwd.is_none() && text.contains("\"cwd\":\"");
        if !want_cwd && !INTERESTING.iter().any(|k| text.contains(k)) {
            return;
        }
        let user_or_assistant = text.contains(INTERESTING[0]) || text.contains(INTERESTING[1]);
        // A message line once the cwd and the first prompt are known: only its type is needed.
        if !want_cwd && user_or_assistant && (!head || self.first_prompt.is_some()) {
            if let Ok(k) = serde_json::from_str::<KindOnly>(text) {
                self.messages += u64::from(matches!(k.kind.as_deref(), Some("user" | "assistant")));
            }
            return;
        }
        let Ok(line) = serde_json::from_str::<Line>(text) else {
            return;
        };
        if self.cwd.is_none()
            && let Some(c) = line.cwd.as_deref().filter(|c| !c.is_empty())
        {
            self.cwd = Some(PathBuf::from(c));
        }
        if head && self.first_prompt.is_none() {
            self.first_prompt = prompt(&line);
        }
        self.titles.see(&line);
        self.messages += u64::from(is_message(&line));
    }
}

/// The time of the last of `lines` that has a timestamp (and parses: a cut line does not count).
fn last_time(lines: &[&str]) -> Option<i64> {
    lines
        .iter()
        .rev()
        .filter(|l| l.contains("\"timestamp\":\""))
        .find_map(|l| {
            serde_json::from_str::<Stamp>(l)
                .ok()?
                .timestamp
                .as_deref()
                .and_then(parse_time)
        })
}

/// Opens a session file for reading, never through a symlink in its last component: a file the CLI wrote is a
/// plain file, and a link in its place would lead the phone to read whatever it names.
pub(super) fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
}

/// Reads the summary of the session file at `path` (of `size` bytes, modified at `mtime`), or `None` when it is
/// not a session: its stem is not a UUID, or no line in its head names a working directory.
pub fn summarize(path: &Path, size: u64, mtime: SystemTime) -> std::io::Result<Option<Summary>> {
    let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
        return Ok(None);
    };
    if uuid::Uuid::try_parse(id).is_err() {
        return Ok(None);
    }
    let mut file = open(path)?;
    // Two short reads far apart: the kernel's read-ahead would only fetch pages nobody reads.
    let _ = nix::fcntl::posix_fadvise(
        &file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_RANDOM,
    );
    // The file may have grown since it was stat'ed: read what the stat said, never past it.
    let whole = size <= HEAD + TAIL;
    let head = read_at(&mut file, 0, if whole { size } else { HEAD })?;
    // In the head, only complete lines count unless the head is the whole file.
    let head_end = if whole {
        head.len()
    } else {
        head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    };
    let head_lines = raw_lines(&head[..head_end], false);
    let mut got = Gathered::default();
    for text in &head_lines {
        got.see(text, true);
    }
    if got.cwd.is_none() {
        return Ok(None);
    }
    let (last, messages, messages_exact) = if whole {
        (last_time(&head_lines), got.messages, true)
    } else {
        let tail_at = size.saturating_sub(TAIL).max(head_end as u64);
        let tail = read_at(&mut file, tail_at, size - tail_at)?;
        let tail_lines = raw_lines(&tail, tail_at != head_end as u64);
        for text in &tail_lines {
            got.see(text, false);
        }
        // Message lines per byte in what was read, over the whole file.
        let read = head_end as u64 + tail.len() as u64;
        let estimate = (got.messages as f64 * size as f64 / read.max(1) as f64).round() as u64;
        let last = last_time(&tail_lines).or_else(|| last_time(&head_lines));
        (last, estimate.max(got.messages), false)
    };
    let mtime_ms = mtime
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Ok(Some(Summary {
        id: id.to_string(),
        cwd: got.cwd.unwrap_or_default(),
        title: got.titles.best().or(got.first_prompt),
        last_activity_ms: last.unwrap_or(mtime_ms),
        messages,
        messages_exact,
        size,
    }))
}

/// Milliseconds since the epoch of an RFC 3339 UTC time such as `2026-11-24T19:45:37.346Z`.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let rest = &s[19..];
    let (ms, zone) = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            let ms = frac[..digits.min(3)].parse::<i64>().unwrap_or(0)
                * 10i64.pow(3 - digits.min(3) as u32);
            (ms, &frac[digits..])
        }
        None => (0, rest),
    };
    if zone != "Z" {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), by eras of 400 years.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) + ms)
}

/// An RFC 3339 UTC time (`2026-11-24T19:45:37.346Z`) from milliseconds since the epoch.
pub fn format_time(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for s in [
            "2026-11-24T19:45:37.346Z",
            "1970-01-01T00:00:00.000Z",
            "2000-02-29T23:59:59.999Z",
        ] {
            assert_eq!(format_time(parse_time(s).unwrap()), s);
        }
        assert_eq!(
            parse_time("2026-11-24T19:45:37Z"),
            parse_time("2026-11-24T19:45:37.000Z")
        );
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_time("2026-11-24T19:45:37+01:00"), None);
        assert_eq!(parse_time("nonsense"), None);
    }

    #[test]
    fn prompts_skip_bookkeeping() {
        let line = |j: &str| serde_json::from_str::<Line>(j).unwrap();
        assert_eq!(
            prompt(&line(r#"{"type":"user","message":{"content":"fix it"}}"#)),
            Some("fix it".into())
        );
        assert_eq!(
            prompt(&line(
                r#"{"type":"user","isMeta":true,"message":{"content":"x"}}"#
            )),
            None
        );
        assert_eq!(
            prompt(&line(
                r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"x"}]}}"#
            )),
            None
        );
        assert_eq!(
            prompt(&line(
                r#"{"type":"user","message":{"content":"<command-name>/clear</command-name>"}}"#
            )),
            None
        );
        assert_eq!(
            prompt(&line(
                r#"{"type":"api-request-blob","message":{"role":"user","content":"x"}}"#
            )),
            None
        );
    }
}
