//! `GET /api/claude-sessions`: the CLI's own sessions whose working directory lies inside an allowed project
//! (docs/api.md, "Sessions from the computer"), newest first, paged.

use std::path::PathBuf;

use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

use super::App;
use super::respond::{Body, error, internal, json, query_param};
use crate::history::{self, Cursor};

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
            if !allowed.iter().any(|a| history::inside(&real, a)) {
                return error(
                    StatusCode::FORBIDDEN,
                    format!("project {p:?} is not inside an allowed project or project root"),
                );
            }
            vec![real]
        }
    };
    let Some(dir) = history::config_dir(|k| std::env::var_os(k)) else {
        return json(StatusCode::OK, &json!({"sessions": [], "next": null}));
    };
    let cache = app.history.clone();
    // Reading files blocks: off the async workers.
    let listed = match tokio::task::spawn_blocking(move || cache.list(&dir, &projects)).await {
        Ok(l) => l,
        Err(e) => return internal(format!("listing sessions: {e}")),
    };
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
