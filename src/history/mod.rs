//! Reading the CLI's own session files (`$CLAUDE_CONFIG_DIR` or `~/.claude`, `projects/<encoded cwd>/<id>.jsonl`)
//! without loading whole files: the listing of the sessions whose working directory lies inside an allowed project
//! (`read`: a bounded head and tail of each file), cached by (path, size, mtime); an adopted session's history
//! (`page`: read backwards from an offset, a page at a time).

pub mod page;
mod read;
mod watch;

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use self::read::{HEAD, Summary, TAIL, format_time, parse_time, summarize};
pub use self::watch::POLL_ENV;
use self::watch::{Freshness, Plan};
use crate::projects::inside;

/// One cached file: what its stat said when it was read, and what was read (`None`: not a session).
struct Cached {
    size: u64,
    mtime: SystemTime,
    summary: Option<Arc<Listed>>,
}

/// A session as listed: its summary and its working directory with symlinks resolved.
#[derive(Debug)]
pub struct Listed {
    /// What the file says.
    pub summary: Summary,
    /// The cwd, canonicalized; lexically normalized when it no longer exists; `None` when it cannot be trusted
    /// (relative, or with `..` and gone).
    pub real_cwd: Option<PathBuf>,
}

/// The session files' summaries, kept between listings, and what keeps them fresh.
#[derive(Default)]
pub struct History {
    /// Every session file present (as of the last look), read or not a session.
    cache: Mutex<HashMap<PathBuf, Cached>>,
    fresh: Mutex<Freshness>,
}

/// A file found: its path, size and modification time.
type Found = (PathBuf, u64, SystemTime);

fn real_cwd(cwd: &Path) -> Option<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(cwd) {
        return Some(real);
    }
    // A directory since deleted: trust only an absolute path without `.` or `..`.
    let plain = cwd.is_absolute()
        && cwd
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    plain.then(|| cwd.to_path_buf())
}

impl History {
    /// Every session under `config_dir` whose working directory lies inside one of `projects` (canonical paths),
    /// newest first (ties by id). Only what changed since the last call is looked at again (as the watcher says,
    /// else a walk of the tree); a file unchanged in size and mtime is not read again.
    pub fn list(&self, config_dir: &Path, projects: &[PathBuf]) -> Vec<Arc<Listed>> {
        let plan = self
            .fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .plan(config_dir);
        match plan {
            Plan::Walk => self.update(true, &[], walk(&config_dir.join("projects"))),
            Plan::Paths(paths) => {
                let (gone, found) = look(&config_dir.join("projects"), &paths);
                self.update(false, &gone, found);
            }
            Plan::Nothing => {}
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut listed: Vec<Arc<Listed>> = cache
            .values()
            .filter_map(|c| c.summary.as_ref())
            .filter(|l| {
                l.real_cwd
                    .as_deref()
                    .is_some_and(|cwd| projects.iter().any(|p| inside(cwd, p)))
            })
            .cloned()
            .collect();
        drop(cache);
        listed.sort_by(|a, b| {
            (b.summary.last_activity_ms, &b.summary.id)
                .cmp(&(a.summary.last_activity_ms, &a.summary.id))
        });
        // The same session id in two folders (a copied file): keep the newest.
        let mut seen = HashSet::new();
        listed.retain(|l| seen.insert(l.summary.id.clone()));
        listed
    }

    /// How the listing is kept fresh (see [`Freshness::mode`]), for `/api/status` and `doctor`.
    pub fn freshness(&self) -> (&'static str, Option<f64>) {
        self.fresh.lock().unwrap_or_else(|e| e.into_inner()).mode()
    }

    /// Stops keeping the listing fresh (the watcher's thread ends); a later listing starts again.
    pub fn stop(&self) {
        self.fresh.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }

    /// Brings the cache up to `found`: after a walk (`all`), the files not found are forgotten; else those under
    /// `gone` are. Files new or changed in size or mtime are read.
    fn update(&self, all: bool, gone: &[PathBuf], found: Vec<Found>) {
        let stale: Vec<&Found> = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if all {
                let present: HashSet<&PathBuf> = found.iter().map(|(p, ..)| p).collect();
                cache.retain(|p, _| present.contains(p));
            } else {
                cache.retain(|p, _| !gone.iter().any(|g| p.starts_with(g)));
            }
            found
                .iter()
                .filter(|(path, size, mtime)| {
                    !cache
                        .get(path)
                        .is_some_and(|c| c.size == *size && c.mtime == *mtime)
                })
                .collect()
        };
        // Read outside the lock, several files at once: a cold listing waits on the disk, not the CPU.
        let read = read_all(&stale);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for ((path, size, mtime), summary) in stale.into_iter().zip(read) {
            let cached = Cached {
                size: *size,
                mtime: *mtime,
                summary,
            };
            cache.insert(path.clone(), cached);
        }
    }
}

/// Every `*.jsonl` regular file in the project folders under `projects`.
fn walk(projects: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    if let Ok(folders) = std::fs::read_dir(projects) {
        for folder in folders.flatten() {
            // Not following a symlinked folder: the CLI writes real directories.
            if folder.file_type().is_ok_and(|t| t.is_dir()) {
                files_of(&folder.path(), &mut found);
            }
        }
    }
    found
}

/// The session files of one project folder.
fn files_of(folder: &Path, found: &mut Vec<Found>) {
    let Ok(files) = std::fs::read_dir(folder) else {
        return;
    };
    for file in files.flatten() {
        let path = file.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        // A regular file only (`DirEntry::metadata` does not follow a symlink).
        let Ok(meta) = file.metadata() else { continue };
        if meta.is_file() {
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((path, meta.len(), mtime));
        }
    }
}

/// What the changed `paths` under `projects` are now: those gone (a file, or a folder and all in it), and the
/// session files found (a changed file, or every file of a new folder). Paths deeper than a session file are not
/// ours.
fn look(projects: &Path, paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Found>) {
    let (mut gone, mut found) = (Vec::new(), Vec::new());
    for path in paths {
        let depth = path
            .strip_prefix(projects)
            .map_or(0, |r| r.components().count());
        let meta = std::fs::symlink_metadata(path);
        match (depth, meta) {
            (1 | 2, Err(_)) => gone.push(path.clone()),
            (1, Ok(m)) if m.is_dir() => files_of(path, &mut found),
            (2, Ok(m)) if m.is_file() && path.extension().is_some_and(|e| e == "jsonl") => {
                let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((path.clone(), m.len(), mtime));
            }
            // Replaced by something we do not list (a symlink, a directory named *.jsonl).
            (1 | 2, Ok(_)) => gone.push(path.clone()),
            _ => {}
        }
    }
    (gone, found)
}

/// Threads reading files at once on a cold listing.
const READERS: usize = 8;

/// The summaries of `files`, in order, read by up to [`READERS`] threads.
fn read_all(files: &[&Found]) -> Vec<Option<Arc<Listed>>> {
    let one =
        |(path, size, mtime): &(PathBuf, u64, SystemTime)| match summarize(path, *size, *mtime) {
            Ok(s) => s.map(|summary| {
                let real_cwd = real_cwd(&summary.cwd);
                Arc::new(Listed { summary, real_cwd })
            }),
            Err(e) => {
                tracing::debug!("reading {}: {e}", path.display());
                None
            }
        };
    if files.len() < 16 {
        return files.iter().map(|f| one(f)).collect();
    }
    let chunk = files.len().div_ceil(READERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let h = scope.spawn(move || part.iter().map(|f| one(f)).collect::<Vec<_>>());
                (part.len(), h)
            })
            .collect();
        // A reader that panicked leaves its files unlisted until they change, never the others out of step.
        handles
            .into_iter()
            .flat_map(|(len, h)| h.join().unwrap_or_else(|_| vec![None; len]))
            .collect()
    })
}

/// A position in a listing: after the session with this last activity and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The last activity of the last session listed, in milliseconds since the epoch.
    pub last_activity_ms: i64,
    /// Its id.
    pub id: String,
}

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.last_activity_ms, self.id)
    }

    /// Reads an opaque cursor, or `None` when it is not one of ours.
    pub fn decode(s: &str) -> Option<Cursor> {
        let (ms, id) = s.split_once('_')?;
        uuid::Uuid::try_parse(id).ok()?;
        Some(Cursor {
            last_activity_ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// The page of `listed` (newest first) after `cursor`, at most `limit` long, and the cursor of the next page.
pub fn page<'a>(
    listed: &'a [Arc<Listed>],
    cursor: Option<&Cursor>,
    limit: usize,
) -> (&'a [Arc<Listed>], Option<Cursor>) {
    let start = match cursor {
        // Newest first: everything at or above the cursor's place was on earlier pages.
        Some(c) => listed.partition_point(|l| {
            (l.summary.last_activity_ms, l.summary.id.as_str())
                >= (c.last_activity_ms, c.id.as_str())
        }),
        None => 0,
    };
    let end = (start + limit).min(listed.len());
    let page = &listed[start..end];
    let next = (end < listed.len())
        .then(|| page.last())
        .flatten()
        .map(|l| Cursor {
            last_activity_ms: l.summary.last_activity_ms,
            id: l.summary.id.clone(),
        });
    (page, next)
}
