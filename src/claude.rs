//! The `claude` child: its command line, starting it as a live process that takes messages and answers on stdin
//! (never in argv), and the stop ladder (SIGINT, SIGTERM, SIGKILL to its process group). What it prints is parsed
//! into typed events in `claude/stream`; what we write to it is built in [`control`].

pub mod control;
mod stream;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub use self::stream::{Event, NOT_LOGGED_IN, Outcome, error_kind, parse_line};
use self::stream::{Line, read_line};

/// The environment variables that mark every process of a conversation's live CLI (a conversation has at most
/// one), so what the CLI orphans can be found: the conversation's id, and the server's data directory (another
/// server on this machine may have a conversation of the same id, "default" say).
pub const MARKER: &str = "REMOTE_AGENT_CONVERSATION_ID";
/// See [`MARKER`].
pub const SERVER_MARKER: &str = "REMOTE_AGENT_DATA_DIR_OF";
/// Marks one process of a conversation and what it starts, so that closing an old process of the conversation
/// never sweeps what a newer one started.
pub const PROCESS_MARKER: &str = "REMOTE_AGENT_PROCESS";

/// The entrypoint our live CLIs record in their session files: one the terminal's `claude --resume` lists.
pub const ENTRYPOINT: &str = "remote-agent";

/// What marks a conversation's processes (see [`MARKER`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// The conversation's id.
    pub conversation: String,
    /// The server's data directory, as configured.
    pub server: String,
    /// One process of the conversation (set when it is started); None: any of them.
    pub process: Option<String>,
}

impl Marker {
    /// The marker of `conversation`'s processes under the server whose data dir is `data_dir`.
    pub fn new(conversation: &str, data_dir: &std::path::Path) -> Marker {
        Marker {
            conversation: conversation.to_string(),
            server: data_dir.display().to_string(),
            process: None,
        }
    }
}

/// How long each rung of the stop ladder waits for the process to exit.
pub const LADDER_GRACE: Duration = Duration::from_secs(3);

/// How much of the child's stderr is kept for error messages.
const STDERR_KEEP: usize = 16 * 1024;

/// The longest stdout line we read (the CLI prints one JSON object per line). A longer one fails the turn and
/// the child is stopped, rather than the server holding an unbounded line in memory.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Everything needed to start a live CLI process for a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The executable, as configured (a path, or a name found on PATH).
    pub bin: String,
    /// Where it runs: the conversation's project.
    pub cwd: PathBuf,
    /// The session to resume, if any.
    pub resume: Option<String>,
    /// Options passed as `--name=value`, so a value can never be read as another flag.
    pub options: Vec<(&'static str, String)>,
    /// Marks the child and its descendants (see [`MARKER`]).
    pub marker: Marker,
}

/// Why the CLI could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// No such executable (as configured).
    #[error("claude executable not found: {0:?} (set CLAUDE_BIN or --claude-bin)")]
    NotFound(String),
    /// It is there but did not start.
    #[error("could not start claude ({bin:?}): {err}")]
    Io {
        /// The executable, as configured.
        bin: String,
        /// Why it did not start.
        #[source]
        err: std::io::Error,
    },
}

/// The arguments for a live process: fixed flags (messages and answers come as JSON lines on stdin, permission
/// requests go out on stdout), then `--resume`, then options as `--name=value`. No message is ever among them.
pub fn args(spec: &Spec) -> Vec<String> {
    let mut args: Vec<String> = [
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--permission-prompt-tool",
        "stdio",
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
    /// What marks this process and its descendants, down to the process.
    marker: Marker,
}

/// Lines for a live process's stdin, written in order by a task of its own (a line can be larger than a pipe
/// buffer). Dropping every clone closes stdin, which ends an idle process.
#[derive(Clone)]
pub struct Input(mpsc::UnboundedSender<String>);

impl Input {
    /// Queues one line (built by [`control`]); false once the process no longer reads.
    pub fn send(&self, line: String) -> bool {
        self.0.send(line).is_ok()
    }
}

/// Starts a live CLI for `spec`: own process group, cwd = the project, our settings stripped from its
/// environment, stdin open for messages and answers.
pub fn spawn(spec: &Spec) -> Result<(Run, Events, Input), SpawnError> {
    let Some(bin) = crate::process::find_executable(&spec.bin) else {
        return Err(SpawnError::NotFound(spec.bin.clone()));
    };
    let marker = Marker {
        process: Some(uuid::Uuid::new_v4().to_string()),
        ..spec.marker.clone()
    };
    let mut cmd = Command::new(&bin);
    cmd.args(args(spec))
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(
            std::env::vars_os().filter(|(k, _)| !k.to_str().is_some_and(crate::config::is_own_env)),
        )
        // Not `sdk-cli`, which the CLI would record and its `--resume` picker then hides (docs/architecture.md).
        .env("CLAUDE_CODE_ENTRYPOINT", ENTRYPOINT)
        .env(MARKER, &marker.conversation)
        .env(SERVER_MARKER, &marker.server)
        .env(
            PROCESS_MARKER,
            marker.process.as_deref().unwrap_or_default(),
        )
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
    let (input, mut lines_in) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        // A child that exits closes the pipe; that shows up on stdout and in its exit, not here.
        while let Some(line) = lines_in.recv().await {
            if stdin.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
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
            marker,
        },
        events,
        Input(input),
    ))
}

impl Run {
    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What marks this process and its descendants (its own, not its conversation's other processes).
    pub fn marker(&self) -> &Marker {
        &self.marker
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

    /// Whether the child has been seen to exit (without waiting).
    pub fn exited(&mut self) -> bool {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.reaped(status);
        }
        self.status.is_some()
    }

    /// Records the exit, and clears what the CLI could not: a SIGKILLed CLI (2.1.332) leaves its messaging socket
    /// behind.
    fn reaped(&mut self, status: ExitStatus) {
        use std::os::unix::process::ExitStatusExt;
        self.status = Some(status);
        if let Some(set) = tracked().as_mut() {
            set.remove(&self.pid);
        }
        if status.signal() == Some(nix::libc::SIGKILL) {
            remove_socket(self.pid);
        }
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.reaped(status);
        Ok(status)
    }

    /// The stop ladder ([`crate::process::ladder`]): SIGINT to the group (the CLI aborts cleanly and ends its
    /// tools), then SIGTERM, then SIGKILL, each after [`LADDER_GRACE`]. Returns once the child has exited; it waits
    /// through [`Run::wait`], which keeps the orphan sweep's list.
    pub async fn stop(&mut self) -> std::io::Result<ExitStatus> {
        use nix::sys::signal::Signal;
        let pid = self.pid;
        if self.status.is_some() {
            // The leader is gone; what is left of its group gets the last rung at once.
            crate::process::signal_group(pid, Signal::SIGKILL);
            return self.wait().await;
        }
        crate::process::ladder(
            pid,
            &[Signal::SIGINT, Signal::SIGTERM],
            LADDER_GRACE,
            self.wait(),
        )
        .await
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // kill_on_drop reaches the leader only; take its group too.
        if self.status.is_none() {
            crate::process::signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
            remove_socket(self.pid);
        }
    }
}

/// Removes the socket a CLI process of this pid advertised (`/tmp/cc-socks/<pid>.sock`), which it deletes itself
/// on every exit but SIGKILL.
fn remove_socket(pid: u32) {
    let _ = std::fs::remove_file(format!("/tmp/cc-socks/{pid}.sock"));
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

/// Stops what a conversation's CLI left behind: as a subreaper we inherit every process the CLI's tree orphans (a Bash tool's
/// own session, a daemonised server), so the turn's leftovers are our children that carry its marker. Kills each
/// with its process group, reaps them, and repeats while killing one orphans more. Cheap when there are none: it
/// reads our children, not all of /proc. Returns how many it killed. Linux only.
pub async fn kill_leftovers(marker: &Marker) -> usize {
    #[cfg(target_os = "linux")]
    {
        let mut killed = 0;
        for _ in 0..10 {
            let marked: Vec<u32> = untracked_children()
                .into_iter()
                .filter(|&(pid, state)| state != 'Z' && has_marker(pid, marker))
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
        let _ = marker;
        0
    }
}

/// At start-up, for a conversation whose turn a crashed server left running: its orphans were re-parented
/// elsewhere, so this searches every process for the conversation's marker. Linux only.
pub fn kill_marked_anywhere(marker: &Marker) -> usize {
    #[cfg(target_os = "linux")]
    {
        let me = std::process::id();
        let pids: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&pid| pid != me && has_marker(pid, marker))
            .collect();
        for &pid in &pids {
            kill_with_group(pid);
        }
        pids.len()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = marker;
        0
    }
}

/// After a stopped turn whose process stays warm: stops the conversation's processes that left the CLI's
/// process group (a Bash tool's command runs in a session of its own, and what it starts in the background goes
/// with it), leaving the CLI and its own helpers. The CLI ends the tool it was running when interrupted, but not
/// what escaped it; before the process stayed warm, all of it was stopped with the turn, and a cancelled turn
/// still leaves nothing running. Returns how many it killed. Linux only.
pub fn kill_outside_group(marker: &Marker, cli: u32) -> usize {
    #[cfg(target_os = "linux")]
    {
        use nix::unistd::{Pid, getpgid};
        let me = std::process::id();
        let group = Pid::from_raw(cli as i32);
        let pids: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&pid| pid != me && pid != cli && has_marker(pid, marker))
            .filter(|&pid| getpgid(Some(Pid::from_raw(pid as i32))).is_ok_and(|g| g != group))
            .collect();
        for &pid in &pids {
            kill_with_group(pid);
        }
        pids.len()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (marker, cli);
        0
    }
}

/// Whether the process is stopped (SIGSTOP, a debugger): it reads nothing until it is continued.
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_string())
        })
        .is_some_and(|rest| rest.starts_with('T') || rest.starts_with('t'))
}

#[cfg(target_os = "linux")]
fn has_marker(pid: u32, marker: &Marker) -> bool {
    let conversation = format!("{MARKER}={}", marker.conversation);
    let server = format!("{SERVER_MARKER}={}", marker.server);
    let process = marker
        .process
        .as_ref()
        .map(|p| format!("{PROCESS_MARKER}={p}"));
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
        let has = |needle: &str| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes());
        has(&conversation) && has(&server) && process.as_deref().is_none_or(has)
    })
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
            resume: None,
            options: vec![("permission-mode", "acceptEdits".into())],
            marker: Marker::new("c", std::path::Path::new("/data")),
        }
    }

    #[test]
    fn a_live_process_reads_json_and_asks_on_stdio() {
        let a = args(&spec());
        assert_eq!(
            &a[..9],
            [
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--include-partial-messages",
                "--permission-prompt-tool",
                "stdio"
            ]
        );
        assert!(a.contains(&"--permission-mode=acceptEdits".to_string()));
        let mut s = spec();
        s.resume = Some("6e656139-0000-4000-8000-000000000000".into());
        let a = args(&s);
        let i = a.iter().position(|x| x == "--resume").unwrap();
        assert_eq!(a[i + 1], "6e656139-0000-4000-8000-000000000000");
    }

    #[test]
    fn own_process_start_is_readable() {
        assert!(process_start(std::process::id()).is_some());
    }
}
