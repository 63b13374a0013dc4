//! Keeping the listing fresh without walking the tree at every request: a `notify` watcher on
//! `<config dir>/projects` (recursive; the config dir itself while `projects` does not exist yet) records which paths
//! changed, and the next listing looks at those alone. Where no watcher can start (inotify out of instances or
//! watches), the listing walks the tree again, but at most every few seconds (a poll).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::Watcher;

/// Forces polling, every this many seconds (tests; a system whose inotify cannot be trusted).
pub const POLL_ENV: &str = "REMOTE_AGENT_HISTORY_POLL";
/// Seconds between two walks when polling, unless [`POLL_ENV`] says otherwise.
const POLL_SECS: u64 = 2;

/// What the next listing must look at again.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// The whole tree.
    Walk,
    /// These paths (files or project folders), each created, changed or removed.
    Paths(Vec<PathBuf>),
    /// Nothing: the cache is current.
    Nothing,
}

/// What the watcher's thread has seen since the last listing.
#[derive(Default)]
struct Changes {
    /// Everything may have changed (the kernel's queue overflowed, or `projects` appeared).
    all: bool,
    paths: HashSet<PathBuf>,
}

enum Mode {
    /// Not started: the first listing starts it.
    Idle,
    Watching {
        /// Dropping it stops its thread.
        watcher: Box<dyn Watcher + Send>,
        /// Whether `projects` itself is watched yet (else only the config dir, for `projects` to appear).
        projects_watched: bool,
        changes: Arc<Mutex<Changes>>,
    },
    Polling {
        every: Duration,
        last: Option<Instant>,
    },
}

/// The freshness of one config dir's listing: started by the first listing, stopped by [`Freshness::stop`] (or
/// dropped) with the server.
pub struct Freshness {
    dir: PathBuf,
    mode: Mode,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness {
            dir: PathBuf::new(),
            mode: Mode::Idle,
        }
    }
}

impl Freshness {
    /// What the listing of `config_dir` must read again now; starts watching it on the first call (or when the
    /// config dir changed).
    pub fn plan(&mut self, config_dir: &Path) -> Plan {
        if matches!(self.mode, Mode::Idle) || self.dir != config_dir {
            self.dir = config_dir.to_path_buf();
            self.mode = start(config_dir);
            if let Mode::Polling { last, .. } = &mut self.mode {
                *last = Some(Instant::now());
            }
            return Plan::Walk;
        }
        let projects = config_dir.join("projects");
        match &mut self.mode {
            Mode::Idle => Plan::Walk,
            Mode::Polling { every, last } => {
                if last.is_some_and(|l| l.elapsed() < *every) {
                    return Plan::Nothing;
                }
                *last = Some(Instant::now());
                Plan::Walk
            }
            Mode::Watching {
                watcher,
                projects_watched,
                changes,
            } => {
                // `projects` appeared since: watch it, and walk it once (what was written before the watch).
                if !*projects_watched && projects.is_dir() {
                    if let Err(e) = watcher.watch(&projects, notify::RecursiveMode::Recursive) {
                        tracing::warn!(
                            "{e}: cannot watch {}; session listing: polling every {POLL_SECS} s instead",
                            projects.display()
                        );
                        self.mode = polling(Duration::from_secs(POLL_SECS));
                        return Plan::Walk;
                    }
                    *projects_watched = true;
                    // Cleared before the walk: what changes during it is looked at next time.
                    *changes.lock().unwrap_or_else(|e| e.into_inner()) = Changes::default();
                    return Plan::Walk;
                }
                let taken = std::mem::take(&mut *changes.lock().unwrap_or_else(|e| e.into_inner()));
                if taken.all {
                    Plan::Walk
                } else if taken.paths.is_empty() {
                    Plan::Nothing
                } else {
                    Plan::Paths(taken.paths.into_iter().collect())
                }
            }
        }
    }

    /// How the listing is kept fresh now: `idle` (no listing yet), `watching`, or `polling` with its period.
    pub fn mode(&self) -> (&'static str, Option<f64>) {
        match &self.mode {
            Mode::Idle => ("idle", None),
            Mode::Watching { .. } => ("watching", None),
            Mode::Polling { every, .. } => ("polling", Some(every.as_secs_f64())),
        }
    }

    /// Stops watching; the next listing walks and starts again.
    pub fn stop(&mut self) {
        self.mode = Mode::Idle;
    }
}

fn polling(every: Duration) -> Mode {
    Mode::Polling { every, last: None }
}

/// Watches `config_dir/projects`, or `config_dir` for it to appear; polls when neither can be watched.
fn start(config_dir: &Path) -> Mode {
    if let Some(secs) = std::env::var(POLL_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
    {
        tracing::info!(
            "session listing: polling {} every {secs} s ({POLL_ENV})",
            config_dir.display()
        );
        return polling(Duration::from_secs_f64(secs));
    }
    let projects = config_dir.join("projects");
    let changes = Arc::new(Mutex::new(Changes::default()));
    let seen = changes.clone();
    let root = projects.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        // On notify's thread: record, never read a file here.
        let mut changes = seen.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Ok(event) if event.need_rescan() => changes.all = true,
            Ok(event) if !event.kind.is_access() => {
                for path in event.paths {
                    if path == root {
                        changes.all = true;
                    } else if path.starts_with(&root) {
                        changes.paths.insert(path);
                    }
                }
            }
            Ok(_) => {}
            Err(_) => changes.all = true,
        }
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut w| {
        let projects_watched = if projects.is_dir() {
            w.watch(&projects, notify::RecursiveMode::Recursive)?;
            true
        } else {
            // Created later: seen as an event on the config dir, or by the next listing's look.
            if config_dir.is_dir() {
                w.watch(config_dir, notify::RecursiveMode::NonRecursive)?;
            }
            false
        };
        Ok((w, projects_watched))
    });
    match watched {
        Ok((watcher, projects_watched)) => {
            tracing::info!("session listing: watching {}", projects.display());
            Mode::Watching {
                watcher: Box::new(watcher),
                projects_watched,
                changes,
            }
        }
        Err(e) => {
            tracing::warn!(
                "{e}: cannot watch {}; session listing: polling every {POLL_SECS} s instead",
                projects.display()
            );
            polling(Duration::from_secs(POLL_SECS))
        }
    }
}
