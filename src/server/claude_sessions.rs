//! `GET /api/claude-sessions`: the CLI's own sessions whose working directory lies inside an allowed project
//! (docs/api.md, "Sessions from the computer"), newest first, paged; `POST /api/claude-sessions/{id}/adopt`, which
//! makes a conversation of one, and `GET /api/conversations/{id}/history`, its history from the session file.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::App;
use super::respond::{Body, error, internal, is_uuid, json, query_param};
use crate::history::{self, Cursor};
use crate::store::Adoption;

/// Sessions per page unless `limit` says otherwise, and the most it may ask for.
const PAGE: usize = 50;
const MAX_PAGE: usize = 200;

/// `GET /api/claude-sessions?project=&cursor=&limit=`.
pub(super) async fn list<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let query = req.uri().query();
    let limit = match query_param(query, "limit").map(|l| l.parse::<usize>()) {
        None => PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit must be a whole number from 1 to {MAX_PAGE}"),
            );
        }
    };
    let cursor = match query_param(query, "cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match Cursor::decode(&c) {
            Some(c) => Some(c),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "cursor is not one this server gave",
                );
            }
        },
    };
    // Sessions inside an allowed project or a project root (crate::projects).
    let settings = app.settings.get();
    let allowed: Vec<PathBuf> = settings
        .projects
        .iter()
        .chain(settings.project_roots.iter())
        .cloned()
        .collect();
    let projects = match query_param(query, "project").filter(|p| !p.is_empty()) {
        None => allowed,
        Some(p) => {
            let path = PathBuf::from(&p);
            if !path.is_absolute() {
                return error(StatusCode::BAD_REQUEST, "project must be an absolute path");
            }
            let Ok(real) = std::fs::canonicalize(&path) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("project {p:?} is not a directory on this computer"),
                );
            };
            if !allowed.iter().any(|a| crate::projects::inside(&real, a)) {
                return error(
                    StatusCode::FORBIDDEN,
                    format!("project {p:?} is not inside an allowed project or project root"),
                );
            }
            vec![real]
        }
    };
    let Some(dir) = settings.claude_dir.clone() else {
        return json(StatusCode::OK, &json!({"sessions": [], "next": null}));
    };
    let cache = app.history.clone();
    // Reading files blocks: off the async workers.
    let mut listed = match tokio::task::spawn_blocking(move || cache.list(&dir, &projects)).await {
        Ok(l) => l,
        Err(e) => return internal(format!("listing sessions: {e}")),
    };
    // Not one that could not be adopted: a session in a guarded dir (crate::projects).
    listed.retain(|l| {
        l.real_cwd
            .as_deref()
            .is_some_and(|c| crate::projects::permits(settings.project_rule(), c))
    });
    let (page, next) = history::page(&listed, cursor.as_ref(), limit);
    let sessions: Vec<Value> = page
        .iter()
        .map(|l| {
            let s = &l.summary;
            json!({
                "id": s.id,
                "cwd": s.cwd.to_string_lossy(),
                "title": s.title,
                "last_activity": history::format_time(s.last_activity_ms),
                "messages": s.messages,
                "messages_exact": s.messages_exact,
                "size": s.size,
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({"sessions": sessions, "next": next.map(|c| c.encode())}),
    )
}

/// The session file of `id` under the config dir's project folders (the newest, if a copy sits in two).
fn session_file(config_dir: &Path, id: &str) -> Option<(PathBuf, u64, SystemTime)> {
    let name = format!("{id}.jsonl");
    std::fs::read_dir(config_dir.join("projects"))
        .ok()?
        .flatten()
        .filter(|f| f.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|f| {
            let path = f.path().join(&name);
            // A regular file, not a symlink.
            let meta = std::fs::symlink_metadata(&path).ok()?;
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            meta.is_file().then_some((path, meta.len(), mtime))
        })
        .max_by_key(|(_, _, mtime)| *mtime)
}

/// `POST /api/claude-sessions/{id}/adopt`: a conversation bound to the session and its working directory → 201,
/// or 200 with the conversation that adopted it before.
pub(super) async fn adopt(app: &App, id: &str) -> Response<Body> {
    let missing = || error(StatusCode::NOT_FOUND, format!("no session {id:?}"));
    if !is_uuid(id) {
        return missing();
    }
    let Some(dir) = app.settings.get().claude_dir.clone() else {
        return missing();
    };
    let session = id.to_string();
    // Reading the file blocks: off the async workers.
    let found = tokio::task::spawn_blocking(move || {
        let (path, size, mtime) = session_file(&dir, &session)?;
        let summary = history::summarize(&path, size, mtime).ok().flatten()?;
        Some((path, size, summary))
    })
    .await;
    let (path, size, summary) = match found {
        Ok(Some(f)) => f,
        Ok(None) => return missing(),
        Err(e) => return internal(format!("reading session {id}: {e}")),
    };
    // The same rule as any conversation's project (crate::projects): the physical path, an allowed project or
    // inside one or a root. The CLI keeps a session under its cwd's real path and resumes it only from there.
    let real = match app.settings.get().allowed_project(&summary.cwd) {
        Ok(real) => real,
        Err(why) => {
            return error(
                StatusCode::FORBIDDEN,
                format!("the session's directory cannot be a project here: {why}"),
            );
        }
    };
    let adoption = Adoption {
        session_id: id.to_string(),
        path: path.to_string_lossy().into_owned(),
        size,
    };
    let new_id = uuid::Uuid::new_v4().to_string();
    let project = real.to_string_lossy();
    let (conversation, made) =
        match app
            .store
            .adopt(&new_id, &project, summary.title.as_deref(), &adoption)
        {
            Ok(r) => r,
            Err(e) => return internal(e),
        };
    match app.store.conversation(&conversation) {
        Ok(Some(c)) => {
            let mut body = json!(c);
            body["adopted"] = adopted(app, &conversation);
            let status = if made {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            json(status, &body)
        }
        Ok(None) => internal("an adopted conversation vanished"),
        Err(e) => internal(e),
    }
}

/// What a conversation's JSON says of its adoption: `{"session_id", "size"}`, or null.
pub(super) fn adopted(app: &App, conversation: &str) -> Value {
    match app.store.adoption(conversation) {
        Ok(Some(a)) => json!({"session_id": a.session_id, "size": a.size}),
        _ => Value::Null,
    }
}

/// History items per page unless `limit` says otherwise, and the most it may ask for.
const HISTORY_PAGE: usize = 50;
const MAX_HISTORY_PAGE: usize = 500;

/// `GET /api/conversations/{id}/history?before=&limit=`: the adopted session's history up to its adoption, paged
/// from the end.
pub(super) async fn history<B>(app: &App, req: &Request<B>, id: &str) -> Response<Body> {
    let conversation = match super::conversations::find_conversation(app, id) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let adoption = match app.store.adoption(&conversation.id) {
        Ok(Some(a)) => a,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("conversation {id:?} was not adopted from a session on the computer"),
            );
        }
        Err(e) => return internal(e),
    };
    let query = req.uri().query();
    let limit = match query_param(query, "limit").map(|l| l.parse::<usize>()) {
        None => HISTORY_PAGE,
        Some(Ok(n)) if (1..=MAX_HISTORY_PAGE).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("limit must be a whole number from 1 to {MAX_HISTORY_PAGE}"),
            );
        }
    };
    let end = match query_param(query, "before").filter(|b| !b.is_empty()) {
        None => adoption.size,
        Some(b) => match b.parse::<u64>() {
            Ok(n) if n <= adoption.size => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "before is not a cursor this server gave",
                );
            }
        },
    };
    let path = PathBuf::from(&adoption.path);
    let read = tokio::task::spawn_blocking(move || history::page::read(&path, end, limit)).await;
    match read {
        Ok(Ok(page)) => json(
            StatusCode::OK,
            &json!({"items": page.items, "before": page.before.map(|b| b.to_string())}),
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => error(
            StatusCode::GONE,
            "the session file is gone from the computer",
        ),
        Ok(Err(e)) => internal(format!("reading {}: {e}", adoption.path)),
        Err(e) => internal(format!("reading history: {e}")),
    }
}
