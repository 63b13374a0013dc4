//! The project picker's API (docs/api.md, "Projects"): `GET /api/projects` (the allowed projects, then recent ones
//! from our conversations and the CLI's sessions) and `GET /api/projects/browse` (directories under a project root).
//! What may be listed at all is `crate::projects`' rule, applied to every path before it is shown.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::App;
use super::respond::{Body, error, internal, json, query_param};
use crate::config::Settings;
use crate::projects::{self, Refusal};

/// The most projects `GET /api/projects` answers with.
const MAX_PROJECTS: usize = 100;
/// The most directories a browse lists, and the most entries it reads to find them.
const MAX_DIRS: usize = 500;
const MAX_ENTRIES: usize = 20_000;

/// `GET /api/projects?q=`.
pub(super) async fn list<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let q = query_param(req.uri().query(), "q")
        .unwrap_or_default()
        .to_lowercase();
    let settings = app.settings.get();
    let conversations = match app.store.conversations() {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    // Our conversations' projects, the newest use of each.
    let mut used: HashMap<String, String> = HashMap::new();
    for c in conversations {
        let at = used.entry(c.project).or_default();
        if c.updated_at > *at {
            *at = c.updated_at;
        }
    }
    let cache = app.history.clone();
    let config_dir = settings.claude_dir.clone();
    // Resolving paths and reading session files block: off the async workers.
    let found = tokio::task::spawn_blocking(move || {
        let mut recent: HashMap<PathBuf, String> = HashMap::new();
        let mut note = |real: PathBuf, at: String| {
            let slot = recent.entry(real).or_default();
            if at > *slot {
                *slot = at;
            }
        };
        for (project, at) in used {
            if let Ok(real) = settings.allowed_project(Path::new(&project)) {
                note(real, at);
            }
        }
        // The CLI's sessions (the history cache's listing: bounded reads, cached by size and mtime).
        if let Some(dir) = config_dir {
            let within: Vec<PathBuf> = settings
                .projects
                .iter()
                .chain(&settings.project_roots)
                .cloned()
                .collect();
            for listed in cache.list(&dir, &within) {
                let Some(cwd) = &listed.real_cwd else {
                    continue;
                };
                if let Ok(real) = settings.allowed_project(cwd) {
                    note(
                        real,
                        crate::history::format_time(listed.summary.last_activity_ms),
                    );
                }
            }
        }
        shape(&settings, recent, &q)
    })
    .await;
    match found {
        Ok(body) => json(StatusCode::OK, &body),
        Err(e) => internal(format!("listing projects: {e}")),
    }
}

/// The answer: the allow-list first, then the recent projects newest first, each once, those matching `q`.
fn shape(settings: &Settings, mut recent: HashMap<PathBuf, String>, q: &str) -> Value {
    let matches = |p: &Path| q.is_empty() || p.to_string_lossy().to_lowercase().contains(q);
    let entry = |path: &Path, last_used: Option<String>, source: &str| {
        json!({
            "path": path.to_string_lossy(),
            "name": projects::name(path),
            "git": projects::is_git(path),
            "last_used": last_used,
            "source": source,
        })
    };
    let mut out: Vec<Value> = settings
        .projects
        .iter()
        .filter(|p| matches(p))
        .map(|p| entry(p, recent.get(p).cloned(), "allow"))
        .collect();
    recent.retain(|p, _| !settings.projects.contains(p) && matches(p));
    let mut recent: Vec<(PathBuf, String)> = recent.into_iter().collect();
    recent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.extend(
        recent
            .into_iter()
            .map(|(p, at)| entry(&p, (!at.is_empty()).then_some(at), "recent")),
    );
    out.truncate(MAX_PROJECTS);
    let roots: Vec<Value> = settings
        .project_roots
        .iter()
        .map(|r| json!({"path": r.to_string_lossy(), "name": projects::name(r)}))
        .collect();
    json!({"projects": out, "roots": roots})
}

/// `GET /api/projects/browse?path=`: the subdirectories of a directory inside a project root; without a path, the
/// roots themselves.
pub(super) async fn browse<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let settings = app.settings.get();
    let path = query_param(req.uri().query(), "path").filter(|p| !p.is_empty());
    let answer = tokio::task::spawn_blocking(move || match path {
        None => {
            let dirs: Vec<Value> = settings
                .project_roots
                .iter()
                .map(|r| dir_entry(r))
                .collect();
            Ok(json!({"path": null, "parent": null, "dirs": dirs, "truncated": false}))
        }
        Some(path) => list_dir(&settings, Path::new(&path)),
    })
    .await;
    match answer {
        Ok(Ok(body)) => json(StatusCode::OK, &body),
        Ok(Err((status, message))) => error(status, message),
        Err(e) => internal(format!("browsing: {e}")),
    }
}

fn dir_entry(path: &Path) -> Value {
    json!({"name": projects::name(path), "path": path.to_string_lossy(), "git": projects::is_git(path)})
}

/// One directory's listing, or the status and message that refuse it.
fn list_dir(settings: &Settings, path: &Path) -> Result<Value, (StatusCode, String)> {
    let roots = &settings.project_roots;
    // Only roots are browsed: an allowed project alone is one directory, not the ones inside it. A root that holds
    // a guarded dir is still browsed (its other directories may be projects); choosing a guarded one is refused.
    let rule = projects::Rule {
        allow: &[],
        roots,
        guarded: &[],
    };
    let real = projects::allowed(rule, path).map_err(|r| {
        let status = match r {
            Refusal::Relative | Refusal::DotDot => StatusCode::BAD_REQUEST,
            Refusal::Missing => StatusCode::NOT_FOUND,
            Refusal::Outside(_) | Refusal::Guarded(_) => StatusCode::FORBIDDEN,
        };
        let message = match r {
            Refusal::Outside(_) => format!("{} is not inside a project root", path.display()),
            other => format!("{}: {other}", path.display()),
        };
        (status, message)
    })?;
    let parent = match roots.contains(&real) {
        true => None,
        false => real.parent().map(Path::to_path_buf),
    };
    let entries = std::fs::read_dir(&real).map_err(|e| {
        (
            StatusCode::FORBIDDEN,
            format!("{} cannot be read: {e}", real.display()),
        )
    })?;
    let mut dirs: Vec<(String, PathBuf)> = Vec::new();
    let mut truncated = false;
    for (n, entry) in entries.flatten().enumerate() {
        if n >= MAX_ENTRIES {
            truncated = true;
            break;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let child = real.join(&name);
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_dir() => true,
            // A link is listed when it leads to a directory inside a root.
            Ok(t) if t.is_symlink() => std::fs::canonicalize(&child)
                .is_ok_and(|target| target.is_dir() && projects::root_of(roots, &target).is_some()),
            _ => false,
        };
        if is_dir {
            dirs.push((name, child));
        }
    }
    dirs.sort_by(|a, b| {
        a.0.to_lowercase()
            .cmp(&b.0.to_lowercase())
            .then_with(|| a.0.cmp(&b.0))
    });
    if dirs.len() > MAX_DIRS {
        dirs.truncate(MAX_DIRS);
        truncated = true;
    }
    let dirs: Vec<Value> = dirs
        .iter()
        .map(|(name, path)| json!({"name": name, "path": path.to_string_lossy(), "git": projects::is_git(path)}))
        .collect();
    Ok(json!({
        "path": real.to_string_lossy(),
        "parent": parent.map(|p| p.to_string_lossy().into_owned()),
        "dirs": dirs,
        "truncated": truncated,
    }))
}
