//! One supervised child: where it is in its life ([`State`]), its restarts and last lines, and the task that
//! owns one run of it (its pid, its output, its exit, the stop ladder when asked).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::{Event, GRACE, Who};
use crate::files;
use crate::process;
use crate::shutdown::{Shutdown, Trigger};
use crate::state;

/// Where a child is in its life.
pub(super) enum State {
    /// Not running and not to be started: before its first start, or stopped for good as `up` ends.
    Stopped,
    /// A run is under way: its pid once its task reports it, and the trigger that stops it.
    Running { pid: Option<u32>, stop: Trigger },
    /// Its run ended; the next one starts at `at`.
    Restarting { at: tokio::time::Instant },
}

/// One supervised child: its current run (if any), restarts and backoff.
pub(super) struct Child {
    pub(super) name: &'static str,
    /// Counts starts, so events of an earlier run are told apart.
    pub(super) generation: u64,
    pub(super) state: State,
    pub(super) started: Instant,
    pub(super) backoff: Backoff,
    pub(super) restarts: u32,
    pub(super) last_exit: Option<String>,
    pub(super) tail: VecDeque<String>,
}

impl Child {
    pub(super) fn new(name: &'static str) -> Child {
        Child {
            name,
            generation: 0,
            state: State::Stopped,
            started: Instant::now(),
            backoff: Backoff::default(),
            restarts: 0,
            last_exit: None,
            tail: VecDeque::new(),
        }
    }

    pub(super) fn running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }

    /// The pid of the current run, once known.
    pub(super) fn pid(&self) -> Option<u32> {
        match self.state {
            State::Running { pid, .. } => pid,
            _ => None,
        }
    }

    /// When the next run is due, if one is.
    pub(super) fn next_start(&self) -> Option<tokio::time::Instant> {
        match self.state {
            State::Restarting { at } => Some(at),
            _ => None,
        }
    }

    /// A new run begins, stopped by `stop`: returns its generation.
    pub(super) fn begin(&mut self, stop: Trigger) -> u64 {
        self.generation += 1;
        self.started = Instant::now();
        self.state = State::Running { pid: None, stop };
        self.generation
    }

    /// The task of run `generation` reports the child's pid.
    pub(super) fn started_as(&mut self, generation: u64, pid: u32) {
        if generation == self.generation
            && let State::Running { pid: known, .. } = &mut self.state
        {
            *known = Some(pid);
        }
    }

    /// Asks the current run to stop (the ladder), leaving the child running until its task reports the exit.
    /// Returns whether there was a run to ask.
    pub(super) fn stop_run(&self) -> bool {
        match &self.state {
            State::Running { stop, .. } => {
                stop.fire();
                true
            }
            _ => false,
        }
    }

    /// As `up` ends: no restart is due any more, and the current run (if any) is asked to stop.
    pub(super) fn stop_for_good(&mut self) {
        if matches!(self.state, State::Restarting { .. }) {
            self.state = State::Stopped;
        }
        self.stop_run();
    }

    /// What `state.json` says of it.
    pub(super) fn record(&self) -> state::Child {
        let state = match self.state {
            State::Running { .. } => state::ChildStatus::Running,
            State::Restarting { .. } => state::ChildStatus::Restarting,
            State::Stopped => state::ChildStatus::Stopped,
        };
        state::Child {
            pid: self.pid(),
            state,
            restarts: u64::from(self.restarts),
            last_exit: self.last_exit.clone(),
        }
    }

    pub(super) fn keep(&mut self, line: &str) {
        if self.tail.len() == 8 {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
    }
}

/// Owns one run of a child: reports its pid, its stdout and stderr lines (stderr also appended to `log`), and its
/// exit; stops it with the ladder when asked.
pub(super) async fn run(
    who: Who,
    generation: u64,
    spawned: std::io::Result<tokio::process::Child>,
    mut stop: Shutdown,
    tx: mpsc::UnboundedSender<Event>,
    log: Option<PathBuf>,
) {
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = tx.send(Event::Exited {
                who,
                generation,
                how: format!("could not start: {e}"),
                asked: false,
            });
            return;
        }
    };
    if let Some(pid) = child.id() {
        let _ = tx.send(Event::Started {
            who,
            generation,
            pid,
        });
    }
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out, who, generation, tx.clone(), None));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err, who, generation, tx.clone(), log));
    }
    let (status, asked) = tokio::select! {
        status = child.wait() => (status.ok(), false),
        () = stop.signalled() => (process::stop(&mut child, GRACE).await, true),
    };
    let how = match status {
        Some(s) => s.to_string(),
        None => "status unknown".into(),
    };
    let _ = tx.send(Event::Exited {
        who,
        generation,
        how,
        asked,
    });
}

async fn forward_lines(
    pipe: impl tokio::io::AsyncRead + Unpin,
    who: Who,
    generation: u64,
    tx: mpsc::UnboundedSender<Event>,
    log: Option<PathBuf>,
) {
    let mut lines = BufReader::new(pipe).lines();
    let mut file = log.as_deref().and_then(|p| files::append_private(p).ok());
    // The file is appended to across runs: count what earlier runs left, or a crash loop grows it without bound.
    let mut written = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    while let Ok(Some(line)) = lines.next_line().await {
        let line = redact_pairing(line);
        if let (Some(f), Some(path)) = (&mut file, &log) {
            let _ = writeln!(f, "{line}");
            written += line.len() as u64 + 1;
            if written > files::LOG_LIMIT {
                files::rotate(path);
                file = files::append_private(path).ok();
                written = 0;
            }
        }
        if tx
            .send(Event::Line {
                who,
                generation,
                line,
            })
            .is_err()
        {
            return;
        }
    }
}

/// cloudflared logs the URL of a request its origin did not answer (`dest=https://host/pair/TOKEN`): a pairing
/// token in a log would sign in whoever reads it.
fn redact_pairing(line: String) -> String {
    const MARK: &str = "/pair/";
    if !line.contains(MARK) {
        return line;
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line.as_str();
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at + MARK.len()]);
        rest = &rest[at + MARK.len()..];
        let token = rest
            .find(|c: char| c.is_whitespace() || "\"'?#&/".contains(c))
            .unwrap_or(rest.len());
        if token > 0 {
            out.push_str("[redacted]");
        }
        rest = &rest[token..];
    }
    out.push_str(rest);
    out
}

pub(super) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(super) fn last_lines(path: &Path, n: usize) -> VecDeque<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let from = text.len().saturating_sub(16 * 1024);
    let text = String::from_utf8_lossy(&text[from..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_state_follows_its_runs() {
        let mut child = Child::new("serve");
        assert!(!child.running() && child.next_start().is_none() && !child.stop_run());
        assert_eq!(child.record().state, state::ChildStatus::Stopped);
        let (stop, stopped) = crate::shutdown::channel();
        let first = child.begin(stop);
        assert!(child.running() && child.pid().is_none());
        // A pid reported by an earlier run is not this run's.
        child.started_as(first - 1, 41);
        assert_eq!(child.pid(), None);
        child.started_as(first, 42);
        assert_eq!(child.record().pid, Some(42));
        assert_eq!(child.record().state, state::ChildStatus::Running);
        // Asked to stop, it still runs until its task reports the exit.
        assert!(child.stop_run() && stopped.is_signalled() && child.running());
        let at = tokio::time::Instant::now();
        child.state = State::Restarting { at };
        assert_eq!(child.next_start(), Some(at));
        assert_eq!(child.record().pid, None);
        assert_eq!(child.record().state, state::ChildStatus::Restarting);
        child.stop_for_good();
        assert!(child.next_start().is_none() && !child.running());
    }

    #[test]
    fn pairing_tokens_are_redacted_from_log_lines() {
        let line = "ERR Request failed dest=https://a.example.com/pair/AbC-_12 event=0 \
                    dest=\"http://x/pair/tok?q=1\" /pair/ /pairs/x"
            .to_string();
        assert_eq!(
            redact_pairing(line),
            "ERR Request failed dest=https://a.example.com/pair/[redacted] event=0 \
             dest=\"http://x/pair/[redacted]?q=1\" /pair/ /pairs/x"
        );
    }
}
