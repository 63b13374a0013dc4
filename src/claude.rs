//! The `claude` child: its command line (the prompt goes to stdin, never argv), stream-json parsing into
//! typed events, and the stop ladder (SIGINT, SIGTERM, SIGKILL to its process group).

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The environment variable that marks every process of a turn, so what the CLI orphans can be found.
pub const TURN_MARKER: &str = "REMOTE_AGENT_TURN_ID";

/// How long each rung of the stop ladder waits for the process to exit.
pub const LADDER_GRACE: Duration = Duration::from_secs(3);

/// How much of the child's stderr is kept for error messages.
const STDERR_KEEP: usize = 16 * 1024;

/// The longest stdout line we read (the CLI prints one JSON object per line). A longer one fails the turn and
/// the child is stopped, rather than the server holding an unbounded line in memory.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Everything needed to start one run of the CLI.
#[derive(Debug, Clone)]
pub struct Spec {
    pub bin: String,
    pub cwd: PathBuf,
    pub prompt: String,
    pub resume: Option<String>,
    /// Options passed as `--name=value`, so a value can never be read as another flag.
    pub options: Vec<(&'static str, String)>,
    /// Marks the child and its descendants (see [`TURN_MARKER`]).
    pub turn_id: String,
}

/// Why the CLI could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("claude executable not found: {0:?} (set CLAUDE_BIN or --claude-bin)")]
    NotFound(String),
    #[error("could not start claude ({bin:?}): {err}")]
    Io {
        bin: String,
        #[source]
        err: std::io::Error,
    },
}

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
    pub subtype: String,
    pub is_error: bool,
    pub text: Option<String>,
    pub session_id: Option<String>,
    pub cost: Option<f64>,
    pub num_turns: Option<i64>,
    pub duration_ms: Option<i64>,
    pub errors: Vec<String>,
}

impl Outcome {
    /// Success is decided here, never by the exit code (claude-cli.md §6.4).
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
    Init {
        session_id: Option<String>,
        model: Option<String>,
    },
    TextDelta(String),
    ThinkingDelta(String),
    /// A complete assistant text block.
    Text(String),
    Thinking(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: Value,
        is_error: bool,
    },
    Retry(Value),
    Result(Outcome),
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
    /// The event as the API streams it: a kind and its JSON data (design.md, "Streaming"), or None for
    /// what clients are not shown.
    pub fn to_stream(&self) -> Option<(&'static str, Value)> {
        Some(match self {
            Event::TextDelta(t) => ("text_delta", json!({ "text": t })),
            Event::ThinkingDelta(t) => ("thinking", json!({ "text": t })),
            Event::Thinking(t) => ("thinking", json!({ "text": t, "complete": true })),
            Event::Text(t) => ("message", json!({ "text": t })),
            Event::ToolUse { id, name, input } => (
                "tool_use",
                json!({ "id": id, "name": name, "input": input }),
            ),
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => (
                "tool_result",
                json!({ "tool_use_id": tool_use_id, "content": content, "is_error": is_error }),
            ),
            Event::Retry(v) => (
                "retry",
                json!({
                    "attempt": v["attempt"], "max_retries": v["max_retries"],
                    "delay_ms": v["retry_delay_ms"], "error": v["error"],
                }),
            ),
            Event::Result(o) => (
                "result",
                json!({
                    "response": o.text, "session_id": o.session_id, "cost": o.cost,
                    "num_turns": o.num_turns, "is_error": !o.succeeded(),
                }),
            ),
            Event::Init { .. } | Event::Other(_) | Event::Garbage(_) => return None,
        })
    }
}

/// The arguments for a run: fixed flags, then `--resume`, then options as `--name=value`. The prompt is not
/// among them.
pub fn args(spec: &Spec) -> Vec<String> {
    let mut args: Vec<String> = [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]
    .map(String::from)
    .to_vec();
    if let Some(id) = &spec.resume {
        args.push("--resume".into());
        args.push(id.clone());
    }
    for (name, value) in &spec.options {
        args.push(format!("--{name}={value}"));
    }
    args
}

/// The pids of our `claude` children that tokio still has to reap; the orphan sweep leaves them alone.
static TRACKED: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

fn tracked() -> std::sync::MutexGuard<'static, Option<HashSet<u32>>> {
    TRACKED.lock().unwrap_or_else(|e| e.into_inner())
}

/// The events a run prints on stdout, in order; closed when stdout closes.
pub type Events = mpsc::Receiver<Event>;

/// A running CLI process.
pub struct Run {
    child: Child,
    pid: u32,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    status: Option<ExitStatus>,
    /// Set when stdout gave a line longer than [`MAX_LINE`]; the events end there.
    too_long: Arc<AtomicBool>,
}

/// What [`read_line`] found.
enum Line {
    /// A line (with its newline, unless stdout ended first) is in the buffer.
    Read,
    /// Stdout has ended.
    End,
    /// The line ran past the limit; the buffer holds its first part.
    TooLong,
}

/// Reads one line into `buf` (which it does not clear), holding at most `limit` bytes of it.
async fn read_line(
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

/// Starts the CLI for `spec`: own process group, cwd = the project, our settings stripped from its environment,
/// the prompt written to stdin on a task of its own (it can be larger than a pipe buffer) and stdin then closed.
pub fn spawn(spec: &Spec) -> Result<(Run, Events), SpawnError> {
    let Some(bin) = crate::process::find_executable(&spec.bin) else {
        return Err(SpawnError::NotFound(spec.bin.clone()));
    };
    let mut cmd = Command::new(&bin);
    cmd.args(args(spec))
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(
            std::env::vars_os().filter(|(k, _)| !k.to_str().is_some_and(crate::config::is_own_env)),
        )
        .env(TURN_MARKER, &spec.turn_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // It dies with us if we are killed (Linux; from a thread that lives as long as we do), and creates files with
    // the user's umask rather than ours.
    #[cfg(target_os = "linux")]
    crate::process::die_with_parent(&mut cmd);
    crate::process::with_user_umask(&mut cmd);
    let mut child = {
        // Spawn and track under one lock, so the orphan sweep never sees this pid untracked.
        let mut tracked = tracked();
        let spawned = crate::process::spawn_from_lasting_thread(cmd);
        let child = spawned.map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => SpawnError::NotFound(spec.bin.clone()),
            _ => SpawnError::Io {
                bin: spec.bin.clone(),
                err,
            },
        })?;
        if let Some(pid) = child.id() {
            tracked.get_or_insert_with(HashSet::new).insert(pid);
        }
        child
    };
    let pid = child.id().unwrap_or(0);

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let prompt = spec.prompt.clone().into_bytes();
    tokio::spawn(async move {
        // A child that exits early closes the pipe; that shows up as its result, not here.
        let _ = stdin.write_all(&prompt).await;
        let _ = stdin.shutdown().await;
    });

    let (tx, events) = mpsc::channel(256);
    let stdout = child.stdout.take().expect("stdout is piped");
    let too_long = Arc::new(AtomicBool::new(false));
    let overflowed = too_long.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match read_line(&mut lines, &mut buf, MAX_LINE).await {
                Ok(Line::End) | Err(_) => break,
                Ok(Line::TooLong) => {
                    // Flagged before the channel closes, so the turn sees it when it sees the close. Returning
                    // drops stdout: the child's next write fails instead of blocking on a full pipe.
                    overflowed.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(Line::Read) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end();
                    if line.is_empty() {
                        continue;
                    }
                    for event in parse_line(line) {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });

    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let keep = stderr.clone();
    tokio::spawn(async move {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = err_pipe.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let mut kept = keep.lock().unwrap_or_else(|e| e.into_inner());
            kept.extend(&chunk[..n]);
            let excess = kept.len().saturating_sub(STDERR_KEEP);
            kept.drain(..excess);
        }
    });

    Ok((
        Run {
            child,
            pid,
            stderr,
            status: None,
            too_long,
        },
        events,
    ))
}

impl Run {
    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether stdout gave a line longer than [`MAX_LINE`] (the events then end early).
    pub fn line_too_long(&self) -> bool {
        self.too_long.load(Ordering::SeqCst)
    }

    /// The last lines the child wrote on stderr.
    pub fn stderr_tail(&self) -> String {
        let kept = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = kept.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).trim().to_string()
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.status = Some(status);
        if let Some(set) = tracked().as_mut() {
            set.remove(&self.pid);
        }
        Ok(status)
    }

    /// The stop ladder: SIGINT to the group (the CLI aborts cleanly and ends its tools), then SIGTERM, then
    /// SIGKILL, each after [`LADDER_GRACE`]; each signal goes with SIGCONT, so that a stopped child acts on it.
    /// Returns once the child has exited. (Not [`crate::process::stop`], the supervisor's ladder: this one starts
    /// with SIGINT, has three rungs, and waits through [`Run::wait`] to keep the orphan sweep's list.)
    pub async fn stop(&mut self) -> std::io::Result<ExitStatus> {
        use nix::sys::signal::Signal;
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            if self.status.is_some() {
                break;
            }
            signal_group(self.pid, signal);
            if let Ok(status) = tokio::time::timeout(LADDER_GRACE, self.wait()).await {
                return status;
            }
        }
        signal_group(self.pid, Signal::SIGKILL);
        self.wait().await
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // kill_on_drop reaches the leader only; take its group too.
        if self.status.is_none() {
            signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn signal_group(pgid: u32, signal: nix::sys::signal::Signal) {
    crate::process::signal_group(pgid, signal);
}

/// Makes this process the reaper of what its descendants orphan (Linux), so the CLI's leftovers can be stopped.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("could not become a child subreaper: {e}");
    }
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), to tell a pid that was
/// reused from the one we recorded.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Stops what a turn left behind: as a subreaper we inherit every process the CLI's tree orphans (a Bash tool's
/// own session, a daemonised server), so the turn's leftovers are our children that carry its marker. Kills each
/// with its process group, reaps them, and repeats while killing one orphans more. Cheap when there are none: it
/// reads our children, not all of /proc. Returns how many it killed. Linux only.
pub async fn kill_leftovers(turn_id: &str) -> usize {
    #[cfg(target_os = "linux")]
    {
        let mut killed = 0;
        for _ in 0..10 {
            let marked: Vec<u32> = untracked_children()
                .into_iter()
                .filter(|&(pid, state)| state != 'Z' && has_marker(pid, turn_id))
                .map(|(pid, _)| pid)
                .collect();
            if marked.is_empty() {
                break;
            }
            for &pid in &marked {
                kill_with_group(pid);
            }
            killed += marked.len();
            reap_orphans().await;
        }
        reap_orphans().await;
        killed
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = turn_id;
        0
    }
}

/// At start-up, for a turn a crashed server left running: its orphans were re-parented elsewhere, so this
/// searches every process for the turn's marker. Linux only.
pub fn kill_marked_anywhere(turn_id: &str) -> usize {
    #[cfg(target_os = "linux")]
    {
        let me = std::process::id();
        let pids: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&pid| pid != me && has_marker(pid, turn_id))
            .collect();
        for &pid in &pids {
            kill_with_group(pid);
        }
        pids.len()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = turn_id;
        0
    }
}

#[cfg(target_os = "linux")]
fn has_marker(pid: u32, turn_id: &str) -> bool {
    let needle = format!("{TURN_MARKER}={turn_id}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
}

#[cfg(target_os = "linux")]
fn kill_with_group(pid: u32) {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::{Pid, getpgid};
    let pid = Pid::from_raw(pid as i32);
    // The group only if the process leads its own; never ours.
    if getpgid(Some(pid)).is_ok_and(|g| g == pid) {
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let _ = kill(pid, Signal::SIGKILL);
}

/// Our children that tokio does not own (it waits for the CLI itself), with their state letter.
#[cfg(target_os = "linux")]
fn untracked_children() -> Vec<(u32, char)> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    let tracked = tracked();
    pids.retain(|p| !tracked.as_ref().is_some_and(|t| t.contains(p)));
    drop(tracked);
    pids.into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = stat[stat.rfind(')')? + 2..].chars().next()?;
            Some((pid, state))
        })
        .collect()
}

/// Reaps our untracked children that have exited, waiting up to two seconds for ones just killed.
#[cfg(target_os = "linux")]
async fn reap_orphans() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let children = untracked_children();
        for &(pid, state) in &children {
            if state == 'Z' {
                let _ = waitpid(
                    nix::unistd::Pid::from_raw(pid as i32),
                    Some(WaitPidFlag::WNOHANG),
                );
            }
        }
        let running = children.iter().filter(|(_, s)| *s != 'Z').count();
        if running == 0 || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            bin: "claude".into(),
            cwd: "/tmp".into(),
            prompt: "--version".into(),
            resume: None,
            options: vec![("permission-mode", "acceptEdits".into())],
            turn_id: "t".into(),
        }
    }

    #[test]
    fn the_prompt_never_reaches_argv() {
        let a = args(&spec());
        assert!(!a.iter().any(|x| x == "--version"), "{a:?}");
        assert_eq!(
            &a[..4],
            ["-p", "--output-format", "stream-json", "--verbose"]
        );
        assert!(a.contains(&"--permission-mode=acceptEdits".to_string()));
        let mut s = spec();
        s.resume = Some("6e656139-0000-4000-8000-000000000000".into());
        let a = args(&s);
        let i = a.iter().position(|x| x == "--resume").unwrap();
        assert_eq!(a[i + 1], "6e656139-0000-4000-8000-000000000000");
    }

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

    #[test]
    fn own_process_start_is_readable() {
        assert!(process_start(std::process::id()).is_some());
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
