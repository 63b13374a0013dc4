//! What a turn changed in its project. Before a turn runs and after it ends, the project's working tree is
//! recorded: in a git repository as a tree written with an index and an object store of our own (`git`: the
//! user's index, stash and objects are never written), so the change set is the difference of two trees,
//! renames found; outside one, from the files the turn's edit tool calls named and their inputs (`plain`). A
//! changed file no edit call named was changed by something else (a Bash command, the user, another program).

mod git;
mod plain;
mod sweep;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::store::{ChangeRecord, EventKind, Store, TurnStatus};

pub use sweep::{Swept, sweep};

/// A diff longer than this many bytes is named, not shown.
pub const MAX_DIFF_BYTES: usize = 1 << 20;
/// A diff longer than this many lines is named, not shown.
pub const MAX_DIFF_LINES: usize = 5000;

/// How a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A new file.
    Added,
    /// A file whose content (or mode) changed.
    Modified,
    /// A file that is gone.
    Deleted,
    /// A file moved, maybe changed too.
    Renamed,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Its path in the project (its new one for a rename).
    pub path: String,
    /// Its path before a rename.
    pub old_path: Option<String>,
    /// How it changed.
    pub status: Status,
    /// Lines added.
    pub added: usize,
    /// Lines removed.
    pub removed: usize,
    /// Git took it for binary: no lines, no diff.
    pub binary: bool,
    /// An edit tool call of the turn named it.
    pub by_claude: bool,
}

impl FileChange {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "path": self.path, "status": self.status, "added": self.added, "removed": self.removed,
            "binary": self.binary, "by": if self.by_claude { "claude" } else { "other" },
        });
        if let Some(old) = &self.old_path {
            v["old_path"] = json!(old);
        }
        v
    }
}

/// A turn whose "before" is recorded, for [`end`].
pub struct Begun {
    turn_id: String,
    cwd: PathBuf,
    repo: Option<git::Repo>,
    ok: bool,
}

/// Records the project's state before a turn that runs in `cwd`.
pub async fn begin(store: &Store, data_dir: &Path, turn_id: &str, cwd: &Path) -> Begun {
    let mut record = ChangeRecord {
        turn_id: turn_id.to_string(),
        cwd: cwd.display().to_string(),
        ..Default::default()
    };
    let repo = git::repo(cwd).await;
    let mut ok = true;
    if let Some(repo) = &repo {
        record.git_dir = Some(repo.git_dir.display().to_string());
        record.prefix = repo.prefix.clone();
        match git::snapshot(data_dir, cwd, repo).await {
            Ok(tree) => record.before = Some(tree),
            Err(e) => {
                tracing::warn!(
                    turn = turn_id,
                    "could not record the project before the turn: {e}"
                );
                record.error = Some(format!("the project's state could not be recorded: {e}"));
                ok = false;
            }
        }
    }
    if let Err(e) = store.begin_changes(&record) {
        tracing::warn!(turn = turn_id, "could not store the project's state: {e}");
    }
    Begun {
        turn_id: turn_id.to_string(),
        cwd: cwd.to_path_buf(),
        repo,
        ok,
    }
}

/// Records the project's state after the turn.
pub async fn end(store: &Store, data_dir: &Path, begun: Begun) {
    let (after, error) = match &begun.repo {
        Some(repo) if begun.ok => match git::snapshot(data_dir, &begun.cwd, repo).await {
            Ok(tree) => (Some(tree), None),
            Err(e) => {
                tracing::warn!(
                    turn = begun.turn_id,
                    "could not record the project after the turn: {e}"
                );
                (
                    None,
                    Some(format!("the project's state could not be recorded: {e}")),
                )
            }
        },
        _ => (None, None),
    };
    if let Err(e) = store.end_changes(&begun.turn_id, after.as_deref(), error.as_deref()) {
        tracing::warn!(
            turn = begun.turn_id,
            "could not store the project's state: {e}"
        );
    }
}

/// Why a change set or a diff cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ChangesError {
    /// No such turn or conversation, or no such file in its change set.
    #[error("{0}")]
    NotFound(&'static str),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] rusqlite::Error),
    /// Git failed.
    #[error("{0}")]
    Git(String),
}

/// What a change set is made from: a turn's record, or a conversation's first and last.
struct Scope {
    git: Option<(PathBuf, String, String, String)>,
    git_project: bool,
    pending: bool,
    error: Option<String>,
    calls: Vec<plain::Call>,
    roots: Vec<PathBuf>,
}

/// The edit tool calls of these turns that did not fail, in order.
fn calls(store: &Store, turn_ids: &[&str]) -> Result<Vec<plain::Call>, rusqlite::Error> {
    let events = store.transcript_events(turn_ids)?;
    let failed: HashSet<String> = events
        .iter()
        .filter(|(_, e)| e.kind == EventKind::ToolResult)
        .filter_map(|(_, e)| serde_json::from_str::<Value>(&e.data).ok())
        .filter(|v| v["is_error"] == true)
        .filter_map(|v| v["tool_use_id"].as_str().map(str::to_string))
        .collect();
    Ok(events
        .iter()
        .filter(|(_, e)| e.kind == EventKind::ToolUse)
        .filter_map(|(_, e)| serde_json::from_str::<Value>(&e.data).ok())
        .map(|v| plain::Call {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            input: v["input"].clone(),
        })
        .filter(|c| !failed.contains(&c.id))
        .collect())
}

fn scope(
    store: &Store,
    records: &[ChangeRecord],
    project: &str,
    finished: bool,
) -> Result<Scope, ChangesError> {
    let ids: Vec<&str> = records.iter().map(|r| r.turn_id.as_str()).collect();
    let mut roots: Vec<PathBuf> = records
        .iter()
        .rev()
        .map(|r| PathBuf::from(&r.cwd))
        .collect();
    roots.push(PathBuf::from(project));
    let first = records
        .iter()
        .find(|r| r.git_dir.is_some() && r.before.is_some());
    let last = first.and_then(|f| {
        records
            .iter()
            .rev()
            .find(|r| r.git_dir == f.git_dir && r.prefix == f.prefix && r.after.is_some())
    });
    let git = match (first, last) {
        (Some(f), Some(l)) => Some((
            PathBuf::from(f.git_dir.clone().unwrap_or_default()),
            f.prefix.clone(),
            f.before.clone().unwrap_or_default(),
            l.after.clone().unwrap_or_default(),
        )),
        _ => None,
    };
    Ok(Scope {
        git,
        git_project: records.iter().any(|r| r.git_dir.is_some()),
        pending: !finished || records.iter().any(|r| !r.done),
        error: records.iter().rev().find_map(|r| r.error.clone()),
        calls: calls(store, &ids)?,
        roots,
    })
}

/// The change set of a turn.
fn turn_scope(store: &Store, turn_id: &str) -> Result<Scope, ChangesError> {
    let turn = store
        .turn(turn_id)?
        .ok_or(ChangesError::NotFound("no such turn"))?;
    let project = store
        .conversation(&turn.conversation_id)?
        .map(|c| c.project)
        .unwrap_or_default();
    let records: Vec<ChangeRecord> = store.turn_changes(turn_id)?.into_iter().collect();
    let finished = !matches!(turn.status, TurnStatus::Queued | TurnStatus::Running);
    scope(store, &records, &project, finished)
}

/// Everything a conversation changed since it began.
fn conversation_scope(store: &Store, conversation_id: &str) -> Result<Scope, ChangesError> {
    let conv = store
        .conversation(conversation_id)?
        .ok_or(ChangesError::NotFound("no such conversation"))?;
    let records = store.conversation_changes(conversation_id)?;
    scope(store, &records, &conv.project, true)
}

/// Which of the scope's files changed, with the diff of each when it comes from the tool calls.
async fn files(
    data_dir: &Path,
    s: &Scope,
) -> Result<Vec<(FileChange, Option<String>)>, ChangesError> {
    let roots: Vec<&Path> = s.roots.iter().map(PathBuf::as_path).collect();
    let Some((git_dir, prefix, before, after)) = &s.git else {
        if s.git_project {
            return Ok(Vec::new());
        }
        return Ok(plain::changes(&s.calls, &roots));
    };
    let trees = git::Trees {
        data_dir,
        git_dir,
        prefix,
    };
    let mut list = trees
        .list(before, after)
        .await
        .map_err(|e| ChangesError::Git(e.to_string()))?;
    let named: HashSet<String> = s
        .calls
        .iter()
        .filter_map(|c| plain::named(c, &roots))
        .collect();
    for f in &mut list {
        f.by_claude =
            named.contains(&f.path) || f.old_path.as_ref().is_some_and(|p| named.contains(p));
    }
    Ok(list.into_iter().map(|f| (f, None)).collect())
}

fn listing(s: &Scope, files: &[(FileChange, Option<String>)]) -> Value {
    let mut v = json!({
        "git": s.git_project,
        "pending": s.pending && s.git.is_none(),
        "files": files.iter().map(|(f, _)| f.to_json()).collect::<Vec<_>>(),
    });
    if let Some(e) = &s.error {
        v["error"] = json!(e);
    }
    v
}

/// `GET /api/turns/{id}/changes`.
pub async fn turn(store: &Store, data_dir: &Path, turn_id: &str) -> Result<Value, ChangesError> {
    let s = turn_scope(store, turn_id)?;
    let mut v = listing(&s, &files(data_dir, &s).await?);
    // A turn's own record: pending until its "after" is in.
    v["pending"] = json!(s.pending);
    Ok(v)
}

/// `GET /api/conversations/{id}/changes`.
pub async fn conversation(store: &Store, data_dir: &Path, id: &str) -> Result<Value, ChangesError> {
    let s = conversation_scope(store, id)?;
    Ok(listing(&s, &files(data_dir, &s).await?))
}

/// `GET /api/turns/{id}/changes/{path}`.
pub async fn turn_file(
    store: &Store,
    data_dir: &Path,
    turn_id: &str,
    path: &str,
) -> Result<Value, ChangesError> {
    let s = turn_scope(store, turn_id)?;
    file(data_dir, &s, path).await
}

/// `GET /api/conversations/{id}/changes/{path}`.
pub async fn conversation_file(
    store: &Store,
    data_dir: &Path,
    id: &str,
    path: &str,
) -> Result<Value, ChangesError> {
    let s = conversation_scope(store, id)?;
    file(data_dir, &s, path).await
}

/// One file of a change set, with its diff unless it is binary or too large.
async fn file(data_dir: &Path, s: &Scope, path: &str) -> Result<Value, ChangesError> {
    let all = files(data_dir, s).await?;
    let (f, text) = all
        .into_iter()
        .find(|(f, _)| f.path == path)
        .ok_or(ChangesError::NotFound("no such file among the changes"))?;
    let diff = match (&s.git, text) {
        _ if f.binary => None,
        (Some((git_dir, prefix, before, after)), _) => {
            let trees = git::Trees {
                data_dir,
                git_dir,
                prefix,
            };
            match trees.diff(before, after, &f, MAX_DIFF_BYTES).await {
                Ok(d) => Some(d),
                Err(git::GitError::TooLarge) => None,
                Err(e) => return Err(ChangesError::Git(e.to_string())),
            }
        }
        (None, text) => text,
    };
    let diff = diff.filter(|d| d.len() <= MAX_DIFF_BYTES && d.lines().count() <= MAX_DIFF_LINES);
    let mut v = f.to_json();
    v["too_large"] = json!(!f.binary && diff.is_none());
    v["diff"] = json!(diff.unwrap_or_default());
    Ok(v)
}
