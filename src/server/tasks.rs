//! The prototype's later, asynchronous API: `POST /api/sessions/{session_id}/chat` queues a turn and answers at
//! once with its id as the task's; `GET …/tasks/{task_id}` tells whether it has ended, with `/api/chat`'s answer
//! once it has; `DELETE …/tasks/{task_id}` forgets it (cancelling it if it still runs); `GET /api/config` names the
//! default project. The turns run through the same machinery as every other; a task is only a turn's id
//! remembered with the session it was asked of (in memory: a task does not outlive the server, as in the
//! prototype).

use std::collections::VecDeque;
use std::sync::Mutex;

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::respond::{
    Body, check_conversation_id, error, internal, is_uuid, json, non_empty_message, submit_error,
};
use crate::store::TurnStatus;
use crate::turns::{Stop, Submit};

/// Tasks remembered at most; past this the oldest is forgotten (its turn stays in the conversation).
pub const MAX_TASKS: usize = 1000;

/// The tasks asked for: (task id, the session named in the path: a UUID, or `new`), oldest first.
#[derive(Default)]
pub struct Tasks(Mutex<VecDeque<(String, String)>>);

impl Tasks {
    fn remember(&self, task: String, session: String) {
        let mut tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() >= MAX_TASKS {
            tasks.pop_front();
        }
        tasks.push_back((task, session));
    }

    /// Whether the task was asked of `session`.
    fn belongs(&self, task: &str, session: &str) -> bool {
        let tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tasks.iter().any(|(t, s)| t == task && s == session)
    }

    /// Forgets the task if it was asked of `session`; whether it was.
    fn forget(&self, task: &str, session: &str) -> bool {
        let mut tasks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let before = tasks.len();
        tasks.retain(|(t, s)| !(t == task && s == session));
        tasks.len() != before
    }
}

/// `POST /api/sessions/{session_id}/chat`'s body.
#[derive(Deserialize, Default)]
pub(super) struct TaskRequest {
    pub(super) message: Option<String>,
    pub(super) conv_id: Option<String>,
}

fn check_session(session: &str) -> Result<(), Response<Body>> {
    match session == "new" || is_uuid(session) {
        true => Ok(()),
        false => Err(error(
            StatusCode::BAD_REQUEST,
            "the session must be a UUID or new",
        )),
    }
}

fn not_found() -> Response<Body> {
    json(StatusCode::NOT_FOUND, &json!({"status": "not_found"}))
}

/// `POST /api/sessions/{session_id}/chat`: queues the message as a turn (resuming the session, or in a fresh one
/// for `new`) and answers with the turn's id as the task's.
pub(super) fn chat(app: &App, session: &str, body: TaskRequest) -> Response<Body> {
    if let Err(resp) = check_session(session) {
        return resp;
    }
    let message = match non_empty_message(body.message) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let conv_id = body.conv_id.unwrap_or_else(|| "default".into());
    if let Err(resp) = check_conversation_id("conv_id", &conv_id) {
        return resp;
    }
    if let Err(e) = app.turns.ready() {
        return submit_error(e);
    }
    let settings = app.settings.get();
    let project = settings.default_project().display().to_string();
    // As `/api/chat`: no one is there to answer Claude's questions, so the prototype's mode (the ceiling).
    if let Err(e) =
        app.store
            .ensure_conversation(&conv_id, &project, Some(&settings.permission_mode))
    {
        return internal(e);
    }
    let fresh = session == "new";
    let turn = match app.turns.submit(Submit {
        conversation_id: conv_id,
        prompt: message,
        resume: (!fresh).then(|| session.to_string()),
        fresh,
        client_id: None,
        attachments: Vec::new(),
    }) {
        Ok((turn, _)) => turn,
        Err(e) => return submit_error(e),
    };
    app.tasks.remember(turn.id.clone(), session.to_string());
    json(
        StatusCode::OK,
        &json!({"task_id": turn.id, "status": "processing"}),
    )
}

/// `GET /api/sessions/{session_id}/tasks/{task_id}`: processing, or completed with `/api/chat`'s answer.
pub(super) fn get(app: &App, session: &str, task: &str) -> Response<Body> {
    if let Err(resp) = check_session(session) {
        return resp;
    }
    if !app.tasks.belongs(task, session) {
        return not_found();
    }
    let turn = match app.store.turn(task) {
        Ok(Some(turn)) => turn,
        Ok(None) => return not_found(),
        Err(e) => return internal(e),
    };
    if matches!(turn.status, TurnStatus::Queued | TurnStatus::Running) {
        return json(StatusCode::OK, &json!({"status": "processing"}));
    }
    let success = turn.status == TurnStatus::Succeeded;
    let result: Value = json!({
        "response": turn.response.unwrap_or_default(),
        "session_id": turn.session_id,
        "cost": turn.cost.unwrap_or(0.0),
        "turns": turn.num_turns.unwrap_or(0),
        "success": success,
        "error": if success { None } else { turn.error },
    });
    json(
        StatusCode::OK,
        &json!({"status": "completed", "result": result}),
    )
}

/// `DELETE /api/sessions/{session_id}/tasks/{task_id}`: forgets the task, cancelling its turn if it still runs.
pub(super) fn delete(app: &App, session: &str, task: &str) -> Response<Body> {
    if let Err(resp) = check_session(session) {
        return resp;
    }
    if !app.tasks.forget(task, session) {
        return not_found();
    }
    app.turns.stop(task, Stop::Cancel);
    json(StatusCode::OK, &json!({"status": "cleaned"}))
}

/// `GET /api/config`: the project a conversation of the prototype's API runs in.
pub(super) fn config(app: &App) -> Response<Body> {
    let project = app.settings.get().default_project().display().to_string();
    json(StatusCode::OK, &json!({"project_path": project}))
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

    const SESSION: &str = "0b6a3c1e-2f4d-4e5a-8b7c-9d0e1f2a3b4c";

    #[tokio::test]
    async fn bad_input_is_refused_before_any_turn() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        let refused = |e: &str| (400, json!({ "error": e }));
        let hi = || TaskRequest {
            message: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(
            answer(chat(&app, "--resume", hi())).await,
            refused("the session must be a UUID or new")
        );
        let blank = TaskRequest::default();
        assert_eq!(
            answer(chat(&app, "new", blank)).await,
            refused("message must be a non-empty string")
        );
        let bad_conv = TaskRequest {
            conv_id: Some("../x".into()),
            ..hi()
        };
        assert_eq!(
            answer(chat(&app, SESSION, bad_conv)).await,
            refused("conv_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
        );
        assert!(app.store.conversations().unwrap().is_empty());
        assert_eq!(
            answer(get(&app, "x y", "t")).await,
            refused("the session must be a UUID or new")
        );
    }

    #[tokio::test]
    async fn unknown_tasks_and_tasks_of_another_session_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        let gone = (404, json!({"status": "not_found"}));
        assert_eq!(answer(get(&app, SESSION, "nope")).await, gone);
        assert_eq!(answer(delete(&app, "new", "nope")).await, gone);
        app.tasks.remember("t1".into(), "new".into());
        assert_eq!(answer(get(&app, SESSION, "t1")).await, gone);
        assert_eq!(answer(delete(&app, SESSION, "t1")).await, gone);
        // Remembered but with no turn stored: not found rather than a guess.
        assert_eq!(answer(get(&app, "new", "t1")).await, gone);
        assert_eq!(
            answer(delete(&app, "new", "t1")).await,
            (200, json!({"status": "cleaned"}))
        );
        assert!(!app.tasks.belongs("t1", "new"));
    }

    #[test]
    fn the_oldest_task_is_forgotten_past_the_cap() {
        let tasks = Tasks::default();
        for i in 0..=MAX_TASKS {
            tasks.remember(i.to_string(), "new".into());
        }
        assert!(!tasks.belongs("0", "new"));
        assert!(tasks.belongs("1", "new"));
        assert!(tasks.belongs(&MAX_TASKS.to_string(), "new"));
    }

    #[tokio::test]
    async fn config_names_the_default_project() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        let (status, body) = answer(config(&app)).await;
        assert_eq!(status, 200);
        let project = app.settings.get().default_project().display().to_string();
        assert_eq!(body, json!({ "project_path": project }));
    }
}
