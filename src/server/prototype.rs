//! The prototype's API, kept with its shapes: `POST /api/chat` (waits for its turn), `POST /api/reset` and
//! `GET /api/sessions`. Handlers take their input parsed, so they run without a socket.

use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::respond::{
    Body, check_conversation_id, error, internal, is_uuid, json, non_empty_message, query_param,
    read_json, submit_error,
};
use crate::turns::Submit;

/// `POST /api/chat`'s body.
#[derive(Deserialize, Default)]
pub(super) struct ChatRequest {
    pub(super) message: Option<String>,
    pub(super) conv_id: Option<String>,
    pub(super) session_id: Option<String>,
}

/// `POST /api/chat`: runs the message as a turn and answers when it has ended.
pub(super) async fn chat(app: &App, body: ChatRequest) -> Response<Body> {
    let message = match non_empty_message(body.message) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let conv_id = body.conv_id.unwrap_or_else(|| "default".into());
    if let Err(resp) = check_conversation_id("conv_id", &conv_id) {
        return resp;
    }
    if let Some(id) = &body.session_id
        && !is_uuid(id)
    {
        return error(StatusCode::BAD_REQUEST, "session_id must be a UUID");
    }
    if let Err(e) = app.turns.ready() {
        return submit_error(e);
    }
    let settings = app.settings.get();
    let project = settings.default_project().display().to_string();
    // The prototype's clients cannot answer Claude's questions: their conversations run in the prototype's mode
    // (the ceiling), as they always did, rather than wait for an answer that will not come.
    if let Err(e) =
        app.store
            .ensure_conversation(&conv_id, &project, Some(&settings.permission_mode))
    {
        return internal(e);
    }
    let waiter = match app.turns.submit(Submit {
        conversation_id: conv_id,
        prompt: message,
        resume: body.session_id,
        fresh: false,
        client_id: None,
        attachments: Vec::new(),
    }) {
        Ok((_, Some(waiter))) => waiter,
        Ok((_, None)) => return internal("a new turn came back without a waiter"),
        Err(e) => return submit_error(e),
    };
    let Some(ended) = waiter.ended().await else {
        return internal("the turn ended unseen");
    };
    if ended.not_found {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            ended.error.unwrap_or_default(),
        );
    }
    let success = ended.status == crate::store::TurnStatus::Succeeded;
    json(
        StatusCode::OK,
        &json!({
            "response": ended.response.unwrap_or_default(),
            "session_id": ended.session_id,
            "cost": ended.cost.unwrap_or(0.0),
            "turns": ended.num_turns.unwrap_or(0),
            "success": success,
            "error": if success { None } else { ended.error },
        }),
    )
}

/// `POST /api/reset`'s input: the conversation named in the query or the body.
#[derive(Deserialize, Default)]
pub(super) struct ResetRequest {
    pub(super) conv_id: Option<String>,
}

impl ResetRequest {
    /// The prototype read `conv_id` from the query; a JSON body naming it is honoured too, rather than
    /// silently resetting `default`.
    pub(super) async fn read(req: Request<Incoming>) -> Result<ResetRequest, Response<Body>> {
        let from_query = query_param(req.uri().query(), "conv_id");
        let has_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
        let from_body = match (&from_query, has_body) {
            (None, true) => read_json::<ResetRequest>(req).await?.conv_id,
            _ => None,
        };
        Ok(ResetRequest {
            conv_id: from_query.or(from_body),
        })
    }
}

/// `POST /api/reset`: cancels the conversation's turns and forgets it.
pub(super) async fn reset(app: &App, body: ResetRequest) -> Response<Body> {
    let conv_id = body.conv_id.unwrap_or_else(|| "default".into());
    if let Err(resp) = check_conversation_id("conv_id", &conv_id) {
        return resp;
    }
    app.turns.cancel_conversation(&conv_id).await;
    if let Err(e) = app.store.delete_conversation(&conv_id) {
        return internal(e);
    }
    json(
        StatusCode::OK,
        &json!({"message": "Conversation reset successfully", "conv_id": conv_id}),
    )
}

/// `GET /api/sessions`: every conversation by id, in the prototype's shape.
pub(super) fn sessions(app: &App) -> Response<Body> {
    let conversations = match app.store.conversations() {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let map: serde_json::Map<String, Value> = conversations
        .into_iter()
        .map(|c| {
            let entry = json!({
                "session_id": c.session_id,
                "created_at": c.created_at,
                "last_message_at": c.last_message_at.unwrap_or(c.updated_at),
                "turn_count": c.turn_count,
                "last_message": c.last_message,
                "total_cost_usd": c.total_cost_usd,
            });
            (c.id, entry)
        })
        .collect();
    json(StatusCode::OK, &Value::Object(map))
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

    #[tokio::test]
    async fn chat_refuses_bad_input_before_any_turn() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        let refused = |error: &str| (400, json!({ "error": error }));
        let blank = ChatRequest {
            message: Some(" \n".into()),
            ..Default::default()
        };
        assert_eq!(
            answer(chat(&app, blank).await).await,
            refused("message must be a non-empty string")
        );
        let bad_id = ChatRequest {
            message: Some("hi".into()),
            conv_id: Some("../x".into()),
            ..Default::default()
        };
        assert_eq!(
            answer(chat(&app, bad_id).await).await,
            refused("conv_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
        );
        let bad_session = ChatRequest {
            message: Some("hi".into()),
            session_id: Some("--version".into()),
            ..Default::default()
        };
        assert_eq!(
            answer(chat(&app, bad_session).await).await,
            refused("session_id must be a UUID")
        );
        assert!(app.store.conversations().unwrap().is_empty());
    }

    #[tokio::test]
    async fn reset_forgets_a_conversation_and_sessions_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        app.store.ensure_conversation("c1", "/p", None).unwrap();
        let (status, listed) = answer(sessions(&app)).await;
        assert_eq!(status, 200);
        assert_eq!(listed["c1"]["turn_count"], 0);
        assert_eq!(listed["c1"]["session_id"], Value::Null);
        let named = ResetRequest {
            conv_id: Some("c1".into()),
        };
        assert_eq!(
            answer(reset(&app, named).await).await,
            (
                200,
                json!({"message": "Conversation reset successfully", "conv_id": "c1"})
            )
        );
        assert_eq!(answer(sessions(&app)).await, (200, json!({})));
        // No conversation named: the prototype's `default`.
        let (_, said) = answer(reset(&app, ResetRequest::default()).await).await;
        assert_eq!(said["conv_id"], "default");
    }
}
