//! `GET /api/conversations/{id}/desk`: whether a terminal `claude` on the computer holds the conversation's
//! session (docs/api.md), so the phone can ask before it sends a second writer's message.

use std::path::PathBuf;

use hyper::{Response, StatusCode};
use serde_json::json;

use super::App;
use super::conversations::find_conversation;
use super::respond::{Body, internal, json};
use crate::desk;

/// `GET /api/conversations/{id}/desk` → `{"live", "pids", "how"}`.
pub(super) async fn desk(app: &App, id: &str) -> Response<Body> {
    let conversation = match find_conversation(app, id) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let Some(session) = conversation.session_id else {
        return json(
            StatusCode::OK,
            &json!({"live": false, "pids": [], "how": null}),
        );
    };
    let project = PathBuf::from(&conversation.project);
    let claude_dir = app.settings.get().claude_dir.clone();
    // Reading /proc blocks: off the async workers.
    let found = tokio::task::spawn_blocking(move || {
        let cwd = std::fs::canonicalize(&project).unwrap_or(project);
        let file = claude_dir.and_then(|dir| desk::session_file(&dir, &cwd, &session));
        desk::holding(&desk::terminals(), &session, &cwd, file.as_deref())
    })
    .await;
    match found {
        Ok(live) => json(
            StatusCode::OK,
            &json!({
                "live": !live.pids.is_empty(),
                "pids": live.pids,
                "how": live.how.map(desk::How::as_str),
            }),
        ),
        Err(e) => internal(format!("looking for terminal sessions: {e}")),
    }
}
