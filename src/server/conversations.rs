//! The conversations API: conversations with their transcripts, messages as background turns, turns and their
//! cancelling, and status. A turn's event streams are in `events`.

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::respond::{
    Body, check_conversation_id, error, full, internal, is_uuid, json, query_param,
    valid_conversation_id,
};
use crate::config::PERMISSION_MODES;
use crate::store::{Conversation, ConversationPatch, EventKind, StreamEvent, TurnStatus};

/// Turns per transcript page unless `limit` says otherwise, and the most it may ask for.
const PAGE: usize = 50;
const MAX_PAGE: usize = 200;

pub(super) fn status(app: &App) -> Response<Body> {
    let (running, queued) = app.turns.counts();
    let settings = app.settings.get();
    let listing = app.history.freshness();
    // What the phone may offer for a conversation's mode: the allowed ones up to the ceiling, and the default.
    let modes: Vec<&String> = settings
        .allowed_permission_modes
        .iter()
        .filter(|m| settings.refuse_mode(m).is_none())
        .collect();
    // Under `up`, its state file tells the tunnel and the children; served alone, there is no tunnel.
    let supervisor = crate::state::read_live(&app.settings.get().state_dir);
    let tunnel = supervisor.as_ref().map_or_else(
        || json!({"kind": "none", "url": null, "ready": false}),
        |s| json!(s.tunnel),
    );
    json(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": app.started.elapsed().as_secs(),
            "tunnel": tunnel,
            "turns": {"running": running, "queued": queued},
            "subscribers": app.turns.subscribers(),
            // The allowed project directories, the default first (the web app's picker).
            "projects": settings.projects,
            // Directories under which any directory may be a project (the picker browses them).
            "project_roots": settings.project_roots,
            "permission_modes": {"allowed": modes, "default": settings.default_permission_mode},
            // How the computer's session list is kept fresh: idle until first listed, then watching or polling.
            "session_listing": {"mode": listing.0, "every_secs": listing.1},
            "supervisor": supervisor.map(|s| json!({"pid": s.pid, "children": s.children})),
        }),
    )
}

pub(super) fn list_conversations(app: &App) -> Response<Body> {
    match app.store.conversations() {
        Ok(c) => json(StatusCode::OK, &json!({ "conversations": c })),
        Err(e) => internal(e),
    }
}

/// `POST /api/conversations`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewConversation {
    id: Option<String>,
    title: Option<String>,
    project: Option<String>,
    model: Option<String>,
    permission_mode: Option<String>,
    max_budget_usd: Option<f64>,
}

pub(super) async fn create_conversation(app: &App, body: NewConversation) -> Response<Body> {
    let id = body.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Err(resp) = check_conversation_id("id", &id) {
        return resp;
    }
    let project = match &body.project {
        None => app.settings.get().default_project().to_path_buf(),
        // The rule is crate::projects::allowed: an allowed project, or a directory inside a project root.
        Some(p) => match app.settings.get().allowed_project(std::path::Path::new(p)) {
            Ok(p) => p,
            Err(refusal) => {
                return error(StatusCode::BAD_REQUEST, format!("project {p:?}: {refusal}"));
            }
        },
    };
    let checks = [
        check_title(body.title.as_deref()),
        check_model(body.model.as_deref()),
        check_mode(body.permission_mode.as_deref()),
        check_budget(body.max_budget_usd),
    ];
    if let Some(message) = checks.into_iter().flatten().next() {
        return error(StatusCode::BAD_REQUEST, message);
    }
    if let Some(message) = refuse_mode(app, body.permission_mode.as_deref()) {
        return error(StatusCode::FORBIDDEN, message);
    }
    let conversation = Conversation {
        id: id.clone(),
        title: body.title,
        project: project.display().to_string(),
        session_id: None,
        model: body.model,
        permission_mode: body.permission_mode,
        max_budget_usd: body.max_budget_usd,
        created_at: String::new(),
        updated_at: String::new(),
        turn_count: 0,
        total_cost_usd: 0.0,
        last_message: None,
        last_message_at: None,
        first_message: None,
        active_turn_id: None,
        waiting: 0,
    };
    match app.store.create_conversation(&conversation) {
        Ok(true) => match app.store.conversation(&id) {
            Ok(Some(c)) => json(StatusCode::CREATED, &json!(c)),
            Ok(None) => internal("a new conversation vanished"),
            Err(e) => internal(e),
        },
        Ok(false) => error(
            StatusCode::CONFLICT,
            format!("a conversation with id {id:?} exists"),
        ),
        Err(e) => internal(e),
    }
}

fn check_title(title: Option<&str>) -> Option<String> {
    title
        .filter(|t| t.chars().count() > 200 || t.chars().any(char::is_control))
        .map(|_| "title must be at most 200 characters, without control characters".into())
}

fn check_model(model: Option<&str>) -> Option<String> {
    model
        .filter(|m| {
            m.is_empty()
                || m.len() > 100
                || m.starts_with('-')
                || !m
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:[]-".contains(&b))
        })
        .map(|m| format!("model {m:?} is not a model name"))
}

fn check_mode(mode: Option<&str>) -> Option<String> {
    mode.filter(|m| !PERMISSION_MODES.contains(m)).map(|m| {
        format!(
            "permission_mode {m:?} is not one of {}",
            PERMISSION_MODES.join(", ")
        )
    })
}

/// A valid mode that this server does not let a client choose (a 403, unlike an unknown mode's 400).
fn refuse_mode(app: &App, mode: Option<&str>) -> Option<String> {
    mode.and_then(|m| app.settings.get().refuse_mode(m))
}

fn check_budget(budget: Option<f64>) -> Option<String> {
    budget
        .filter(|b| !b.is_finite() || *b <= 0.0)
        .map(|_| "max_budget_usd must be a positive number".into())
}

pub(super) fn get_conversation(app: &App, req: &Request<Incoming>, id: &str) -> Response<Body> {
    let conversation = match find_conversation(app, id) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
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
    let before = query_param(query, "before");
    if before.as_deref().is_some_and(|b| !is_uuid(b)) {
        return error(StatusCode::BAD_REQUEST, "before must be a turn id");
    }
    match transcript(app, id, before.as_deref(), limit) {
        Ok((messages, has_more)) => {
            let mut body = json!(conversation);
            body["adopted"] = super::claude_sessions::adopted(app, id);
            body["messages"] = Value::Array(messages);
            body["has_more"] = json!(has_more);
            match app.store.attachment_bytes(id) {
                Ok(n) => body["attachment_bytes"] = json!(n),
                Err(e) => return internal(e),
            }
            json(StatusCode::OK, &body)
        }
        Err(e) => internal(e),
    }
}

/// The messages of a page of turns, in order: each turn's prompt, its assistant text, thinking, tool calls and
/// results, then its outcome.
fn transcript(
    app: &App,
    conversation_id: &str,
    before: Option<&str>,
    limit: usize,
) -> rusqlite::Result<(Vec<Value>, bool)> {
    let (turns, has_more) = app.store.turns_page(conversation_id, before, limit)?;
    let ids: Vec<&str> = turns.iter().map(|t| t.id.as_str()).collect();
    let events = app.store.transcript_events(&ids)?;
    let mut attachments = app.store.attachments_of(&ids)?;
    let mut by_turn: std::collections::HashMap<&str, Vec<&StreamEvent>> = Default::default();
    for (turn_id, event) in &events {
        by_turn.entry(turn_id.as_str()).or_default().push(event);
    }
    let mut messages = Vec::new();
    for turn in &turns {
        let mut user = json!({
            "type": "user", "turn_id": turn.id, "text": turn.prompt, "created_at": turn.created_at,
        });
        if let Some(a) = attachments.remove(&turn.id) {
            user["attachments"] = json!(a);
        }
        messages.push(user);
        for event in by_turn.get(turn.id.as_str()).into_iter().flatten() {
            let Some(mut message) = event_message(event) else {
                continue;
            };
            message["turn_id"] = json!(turn.id);
            messages.push(message);
        }
        // A turn that stopped mid-reply: what it had said so far, marked partial (its status is in the result).
        if !matches!(
            turn.status,
            TurnStatus::Succeeded | TurnStatus::Queued | TurnStatus::Running
        ) && let Some(text) = app.store.partial_text(&turn.id)?
        {
            messages.push(
                json!({"type": "assistant", "turn_id": turn.id, "text": text, "partial": true}),
            );
        }
        messages.push(json!({
            "type": "result", "turn_id": turn.id, "status": turn.status, "cost": turn.cost,
            "num_turns": turn.num_turns, "duration_ms": turn.duration_ms, "error": turn.error,
            "error_kind": turn.error.as_deref().and_then(crate::claude::error_kind),
            "finished_at": turn.finished_at,
        }));
    }
    Ok((messages, has_more))
}

/// What a transcript shows of a stored event: assistant text, a complete thinking block, a tool call or its
/// result; None for the rest.
pub(super) fn event_message(event: &StreamEvent) -> Option<Value> {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    Some(match event.kind {
        EventKind::Message => json!({"type": "assistant", "text": data["text"]}),
        // Thinking deltas stream live; the transcript keeps the complete blocks.
        EventKind::Thinking if data["complete"] == true => {
            json!({"type": "thinking", "text": data["text"]})
        }
        EventKind::ToolUse => json!({
            "type": "tool_use", "id": data["id"], "name": data["name"], "input": data["input"],
        }),
        EventKind::ToolResult => json!({
            "type": "tool_result", "tool_use_id": data["tool_use_id"],
            "content": data["content"], "is_error": data["is_error"],
        }),
        _ => return None,
    })
}

/// The conversation `id` names, or the 404 to send. The router asks before it reads a body, so that an unknown
/// conversation is a 404 whatever the body says.
pub(super) fn find_conversation(app: &App, id: &str) -> Result<Conversation, Response<Body>> {
    let missing = || error(StatusCode::NOT_FOUND, format!("no conversation {id:?}"));
    if !valid_conversation_id(id) {
        return Err(missing());
    }
    match app.store.conversation(id) {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(missing()),
        Err(e) => Err(internal(e)),
    }
}

/// `PATCH /api/conversations/{id}`: changes the fields the body names (a `null` clears one) on an existing
/// conversation, checked as on creation; a field that cannot change is refused, and a refused body changes
/// nothing.
pub(super) async fn patch_conversation(
    app: &App,
    conversation: &Conversation,
    body: serde_json::Map<String, Value>,
) -> Response<Body> {
    let id = conversation.id.as_str();
    let mut patch = ConversationPatch::default();
    for (key, value) in &body {
        let text = || match value {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                format!("{key} must be a string or null"),
            )),
        };
        let problem = match key.as_str() {
            "title" => text().map(|t| {
                let p = check_title(t.as_deref());
                patch.title = Some(t);
                p
            }),
            "model" => text().map(|m| {
                let p = check_model(m.as_deref());
                patch.model = Some(m);
                p
            }),
            "permission_mode" => match text() {
                Ok(m) => {
                    if let Some(p) = check_mode(m.as_deref()) {
                        Ok(Some(p))
                    } else if let Some(p) = refuse_mode(app, m.as_deref()) {
                        return error(StatusCode::FORBIDDEN, p);
                    } else {
                        patch.permission_mode = Some(m);
                        Ok(None)
                    }
                }
                Err(resp) => Err(resp),
            },
            "max_budget_usd" => match value {
                Value::Null => {
                    patch.max_budget_usd = Some(None);
                    Ok(None)
                }
                Value::Number(n) => {
                    patch.max_budget_usd = Some(n.as_f64());
                    Ok(check_budget(n.as_f64()))
                }
                _ => Ok(Some("max_budget_usd must be a number or null".into())),
            },
            _ => Ok(Some(format!(
                "{key} cannot be changed (title, model, permission_mode, max_budget_usd can)"
            ))),
        };
        match problem {
            Err(resp) => return resp,
            Ok(Some(message)) => return error(StatusCode::BAD_REQUEST, message),
            Ok(None) => {}
        }
    }
    if let Err(e) = app.store.update_conversation(id, &patch) {
        return internal(e);
    }
    match find_conversation(app, id) {
        Ok(c) => json(StatusCode::OK, &json!(c)),
        Err(resp) => resp,
    }
}

pub(super) async fn delete_conversation(app: &App, id: &str) -> Response<Body> {
    if let Err(resp) = find_conversation(app, id) {
        return resp;
    }
    app.turns.cancel_conversation(id).await;
    match app.store.delete_conversation(id) {
        Ok(_) => {
            let mut resp = Response::new(full(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            resp
        }
        Err(e) => internal(e),
    }
}

pub(super) fn get_turn(app: &App, id: &str) -> Response<Body> {
    if !is_uuid(id) {
        return error(StatusCode::NOT_FOUND, "no such turn");
    }
    match app.store.turn(id) {
        Ok(Some(turn)) => {
            let mut body = json!(turn);
            body["error_kind"] = json!(turn.error.as_deref().and_then(crate::claude::error_kind));
            json(StatusCode::OK, &body)
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no such turn"),
        Err(e) => internal(e),
    }
}

pub(super) fn cancel_turn(app: &App, id: &str) -> Response<Body> {
    if is_uuid(id) && app.turns.stop(id, crate::turns::Stop::Cancel) {
        return json(
            StatusCode::ACCEPTED,
            &json!({"turn_id": id, "status": "cancelling"}),
        );
    }
    match app.store.turn(id) {
        Ok(Some(turn)) => error(
            StatusCode::CONFLICT,
            format!("the turn has already ended ({})", turn.status),
        ),
        Ok(None) => error(StatusCode::NOT_FOUND, "no such turn"),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn answer(resp: Response<Body>) -> (u16, Value) {
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn body(value: Value) -> serde_json::Map<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[tokio::test]
    async fn patch_changes_what_the_body_names_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        app.store.ensure_conversation("c1", "/p", None).unwrap();
        let (status, _) = answer(find_conversation(&app, "nope").unwrap_err()).await;
        assert_eq!(status, 404);
        let c1 = find_conversation(&app, "c1").unwrap();
        let patch = |b| patch_conversation(&app, &c1, body(b));
        let (status, changed) =
            answer(patch(json!({"title": "Plans", "max_budget_usd": 2.5})).await).await;
        assert_eq!(status, 200);
        assert_eq!(
            (&changed["title"], &changed["max_budget_usd"]),
            (&json!("Plans"), &json!(2.5))
        );
        let (status, cleared) = answer(patch(json!({"title": null})).await).await;
        assert_eq!((status, &cleared["title"]), (200, &Value::Null));
        let refused = |error: &str| (400, json!({ "error": error }));
        assert_eq!(
            answer(patch(json!({"title": 7})).await).await,
            refused("title must be a string or null")
        );
        assert_eq!(
            answer(patch(json!({"model": "--help"})).await).await,
            refused("model \"--help\" is not a model name")
        );
        assert_eq!(
            answer(patch(json!({"max_budget_usd": 0})).await).await,
            refused("max_budget_usd must be a positive number")
        );
        assert_eq!(
            answer(patch(json!({"project": "/"})).await).await,
            refused(
                "project cannot be changed (title, model, permission_mode, max_budget_usd can)"
            )
        );
        let (status, _) =
            answer(patch(json!({"permission_mode": "bypassPermissions"})).await).await;
        assert_eq!(status, 403);
        // A refused body changes nothing, not even the fields before the refused one.
        let (_, title) = answer(patch(json!({"title": "x", "model": ""})).await).await;
        assert_eq!(title["error"], "model \"\" is not a model name");
        assert_eq!(app.store.conversation("c1").unwrap().unwrap().title, None);
    }
}
