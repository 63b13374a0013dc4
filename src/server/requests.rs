//! The requests API: what Claude asks the person (a tool to approve, questions, a plan), listed while pending and
//! answered once, the answer handed to the turn that asked as the CLI's permission response.

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::App;
use super::respond::{Body, error, internal, is_uuid, json};
use crate::store::{ClaimError, PendingRequest, RequestKind, RequestState};

/// What the CLI is told when the person denies without saying why.
const DENIED: &str = "The user denied this from the phone.";

/// What the person decided, as `decision` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Run it (with the input as edited, and a question's answers).
    Allow,
    /// Run it, and add one of the CLI's suggested rules so it is not asked again.
    AllowAlways,
    /// Do not run it; Claude goes on.
    Deny,
    /// Do not run it, and stop the turn.
    DenyAndStop,
}

impl Decision {
    const ALL: [Decision; 4] = [
        Decision::Allow,
        Decision::AllowAlways,
        Decision::Deny,
        Decision::DenyAndStop,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::AllowAlways => "allow_always",
            Decision::Deny => "deny",
            Decision::DenyAndStop => "deny_and_stop",
        }
    }

    fn parse(word: Option<&str>) -> Result<Decision, String> {
        Decision::ALL
            .into_iter()
            .find(|d| Some(d.as_str()) == word)
            .ok_or_else(|| {
                "decision must be one of allow, allow_always, deny, deny_and_stop".into()
            })
    }
}

/// `POST /api/requests/{id}`'s body, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnswerBody {
    decision: Option<String>,
    /// For allow_always: which of the request's suggestions to add.
    suggestion: Option<usize>,
    /// The tool's input as the person edited it.
    input: Option<Value>,
    /// A question's answers: question text to the chosen label(s).
    answers: Option<Map<String, Value>>,
    /// Why it was denied, for Claude.
    message: Option<String>,
}

/// An answer checked against the request it answers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Reply {
    /// Run the tool with `input`; `permission` is the rule to add (allow_always).
    Allow {
        input: Value,
        permission: Option<Value>,
    },
    /// Do not run it, telling Claude `message`; `stop` also interrupts the turn.
    Deny { message: String, stop: bool },
}

impl Reply {
    /// The decision it came from.
    pub(super) fn decision(&self) -> Decision {
        match self {
            Reply::Allow {
                permission: None, ..
            } => Decision::Allow,
            Reply::Allow { .. } => Decision::AllowAlways,
            Reply::Deny { stop: false, .. } => Decision::Deny,
            Reply::Deny { stop: true, .. } => Decision::DenyAndStop,
        }
    }

    /// Checks a body against the request it answers; the error is what a 400 says.
    pub(super) fn of(
        request: &PendingRequest,
        body: AnswerBody,
        settings: &crate::config::Settings,
    ) -> Result<Reply, String> {
        let decision = Decision::parse(body.decision.as_deref())?;
        if body.input.as_ref().is_some_and(|i| !i.is_object()) {
            return Err("input must be an object (the tool's input as edited)".into());
        }
        // An edit changes the values of what Claude asked, never adds to it: a key the tool did not send (say, a
        // flag that widens what it may do) would run beyond what the person saw.
        if let (Some(edited), Some(asked)) = (
            body.input.as_ref().and_then(Value::as_object),
            request.input.as_object(),
        ) && let Some(extra) = edited.keys().find(|k| !asked.contains_key(*k))
        {
            return Err(format!(
                "input may only change the fields Claude sent; {extra:?} is not one of them"
            ));
        }
        if body.answers.is_some() && request.kind != RequestKind::Question {
            return Err(format!(
                "answers are only for a question; this request is a {}",
                request.kind
            ));
        }
        if let Some(answers) = &body.answers
            && answers.values().any(|a| !a.is_string())
        {
            return Err(
                "answers must map each question's text to the chosen label (a string)".into(),
            );
        }
        if let Some(answers) = &body.answers {
            let asked: Vec<&str> = request.input["questions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|q| q["question"].as_str())
                .collect();
            if let Some(unknown) = answers.keys().find(|k| !asked.contains(&k.as_str())) {
                return Err(format!(
                    "{unknown:?} is not one of the questions Claude asked"
                ));
            }
        }
        let suggestions = request.suggestions.as_array().map_or(&[][..], |s| s);
        let permission = match (decision, body.suggestion) {
            (_, Some(i)) if i >= suggestions.len() => {
                return Err(format!(
                    "suggestion {i} is out of range: this request has {} suggestion(s)",
                    suggestions.len()
                ));
            }
            (Decision::AllowAlways, Some(i)) => {
                let s = &suggestions[i];
                // "Always" stays within what the server allows: a mode above the ceiling is refused, and a rule
                // is kept to this project or this session, never the user's settings for every project.
                if let Some(mode) = s["mode"].as_str()
                    && let Some(refused) = settings.refuse_mode(mode)
                {
                    return Err(refused);
                }
                if !matches!(
                    s["destination"].as_str(),
                    Some("session" | "localSettings") | None
                ) {
                    return Err(format!(
                        "suggestion {i} would change {} settings; only this project's or this session's can be \
                         changed from the phone",
                        s["destination"].as_str().unwrap_or("other")
                    ));
                }
                Some(s.clone())
            }
            (Decision::AllowAlways, None) => {
                return Err(
                    "allow_always needs suggestion: the index of one of the request's suggestions"
                        .into(),
                );
            }
            _ => None,
        };
        Ok(match decision {
            Decision::Allow | Decision::AllowAlways => {
                let mut input = body.input.unwrap_or_else(|| request.input.clone());
                if let (Some(answers), Some(fields)) = (body.answers, input.as_object_mut()) {
                    fields.insert("answers".into(), Value::Object(answers));
                }
                Reply::Allow { input, permission }
            }
            Decision::Deny | Decision::DenyAndStop => Reply::Deny {
                message: body
                    .message
                    .filter(|m| !m.trim().is_empty())
                    .unwrap_or_else(|| DENIED.into()),
                stop: decision == Decision::DenyAndStop,
            },
        })
    }

    /// What goes back to the CLI (the `response` of its `control_response`).
    pub(super) fn cli_response(&self) -> Value {
        match self {
            Reply::Allow { input, permission } => {
                let mut r = json!({"behavior": "allow", "updatedInput": input});
                if let Some(p) = permission {
                    r["updatedPermissions"] = json!([p]);
                }
                r
            }
            Reply::Deny { message, stop } => {
                let mut r = json!({"behavior": "deny", "message": message});
                if *stop {
                    r["interrupt"] = json!(true);
                }
                r
            }
        }
    }
}

/// `GET /api/requests`: every pending request, oldest first.
pub(super) fn list(app: &App) -> Response<Body> {
    match app.store.pending_requests() {
        Ok(r) => json(StatusCode::OK, &json!({ "requests": r })),
        Err(e) => internal(e),
    }
}

/// `POST /api/requests/{id}`: answers a pending request, once.
pub(super) async fn answer(app: &App, id: &str, body: AnswerBody) -> Response<Body> {
    let missing = || error(StatusCode::NOT_FOUND, "no such request");
    let gone = |state: RequestState| {
        error(
            StatusCode::GONE,
            format!("this request is no longer waiting ({state})"),
        )
    };
    if !is_uuid(id) {
        return missing();
    }
    let request = match app.store.request(id) {
        Ok(Some(r)) => r,
        Ok(None) => return missing(),
        Err(e) => return internal(e),
    };
    let reply = match Reply::of(&request, body, &app.settings.get()) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let response = reply.cli_response();
    let claimed = match app.store.claim_request(id, &response) {
        Ok(r) => r,
        Err(ClaimError::NotFound) => return missing(),
        Err(e @ ClaimError::Answered) => return error(StatusCode::CONFLICT, e.to_string()),
        Err(ClaimError::Gone(state)) => return gone(state),
        Err(ClaimError::Store(e)) => return internal(e),
    };
    if !app.turns.answer(&claimed, response).await {
        // The answer did not reach the CLI: the turn that asked is gone (the request expires), or the CLI took
        // the request back first (the turn has ended it withdrawn).
        if let Err(e) = app.store.end_request(id, RequestState::Expired, &[]) {
            return internal(e);
        }
        return match app.store.request(id) {
            Ok(Some(r)) => gone(r.state),
            Ok(None) => missing(),
            Err(e) => internal(e),
        };
    }
    // The conversation's mode follows what the answer did to the CLI's, so the phone shows it and the next turn
    // keeps it (a warm process is set to the conversation's mode before each turn): "always" with a mode for the
    // session, or an approved plan, which leaves plan mode.
    if let Some(mode) = mode_after(&claimed, &reply)
        && app.settings.get().refuse_mode(&mode).is_none()
    {
        let patch = crate::store::ConversationPatch {
            permission_mode: Some(Some(mode)),
            ..Default::default()
        };
        if let Err(e) = app
            .store
            .update_conversation(&claimed.conversation_id, &patch)
        {
            tracing::warn!("could not store the conversation's new mode: {e}");
        }
    }
    json(
        StatusCode::OK,
        &json!({"id": id, "state": RequestState::Answered, "decision": reply.decision().as_str()}),
    )
}

/// The permission mode the CLI is in after this answer, when it changes it.
fn mode_after(request: &PendingRequest, reply: &Reply) -> Option<String> {
    match reply {
        Reply::Allow {
            permission: Some(p),
            ..
        } if p["type"] == "setMode" => p["mode"].as_str().map(String::from),
        Reply::Allow { .. } if request.kind == RequestKind::Plan => Some("default".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const ID: &str = "00000000-0000-4000-8000-000000000001";
    const TURN: &str = "00000000-0000-4000-8000-0000000000aa";

    fn asked(tool_name: &str, input: Value) -> PendingRequest {
        PendingRequest {
            id: ID.into(),
            conversation_id: "c".into(),
            turn_id: TURN.into(),
            cli_request_id: "cli-1".into(),
            kind: RequestKind::of_tool(tool_name),
            tool_name: tool_name.into(),
            input,
            suggestions: json!([{"type": "addRules", "rules": [{"toolName": "Bash"}]}, {"type": "setMode"}]),
            blocked_path: None,
            decision_reason: None,
            title: None,
            display_name: None,
            description: None,
            tool_use_id: None,
            created_at: String::new(),
            state: RequestState::Pending,
            diff: None,
            diff_note: None,
        }
    }

    fn body(v: Value) -> AnswerBody {
        serde_json::from_value(v).unwrap()
    }

    /// The default settings (ceiling acceptEdits).
    fn settings() -> crate::config::Settings {
        let dir = tempfile::tempdir().unwrap();
        (*super::super::tests::app(dir.path()).settings.get()).clone()
    }

    /// The CLI response for a body, or the 400's message.
    fn respond(request: &PendingRequest, v: Value) -> Result<(Decision, Value), String> {
        Reply::of(request, body(v), &settings()).map(|r| (r.decision(), r.cli_response()))
    }

    #[test]
    fn allow_keeps_or_edits_the_input() {
        let bash = asked("Bash", json!({"command": "ls"}));
        assert_eq!(
            respond(&bash, json!({"decision": "allow"})),
            Ok((
                Decision::Allow,
                json!({"behavior": "allow", "updatedInput": {"command": "ls"}})
            ))
        );
        assert_eq!(
            respond(
                &bash,
                json!({"decision": "allow", "input": {"command": "ls -a"}, "message": "ignored"})
            ),
            Ok((
                Decision::Allow,
                json!({"behavior": "allow", "updatedInput": {"command": "ls -a"}})
            ))
        );
    }

    #[test]
    fn a_question_is_allowed_with_its_answers() {
        let question = asked(
            "AskUserQuestion",
            json!({"questions": [{"question": "Which?", "options": [{"label": "A"}, {"label": "B"}]}]}),
        );
        let (decision, response) = respond(
            &question,
            json!({"decision": "allow", "answers": {"Which?": "A, B"}}),
        )
        .unwrap();
        assert_eq!(decision, Decision::Allow);
        assert_eq!(
            response,
            json!({"behavior": "allow", "updatedInput": {
                "questions": question.input["questions"], "answers": {"Which?": "A, B"}}})
        );
    }

    #[test]
    fn an_answer_cannot_ask_for_more_than_claude_did_or_the_server_allows() {
        let mut bash = asked("Bash", json!({"command": "ls"}));
        let refused = |r: Result<(Decision, Value), String>, says: &str| {
            let e = r.unwrap_err();
            assert!(e.contains(says), "{e}");
        };
        refused(
            respond(
                &bash,
                json!({"decision": "allow", "input": {"command": "ls", "dangerouslyDisableSandbox": true}}),
            ),
            "dangerouslyDisableSandbox",
        );
        bash.suggestions = json!([
            {"type": "setMode", "mode": "bypassPermissions", "destination": "session"},
            {"type": "addRules", "rules": [{"toolName": "Bash"}], "behavior": "allow", "destination": "userSettings"},
            {"type": "setMode", "mode": "acceptEdits", "destination": "session"},
        ]);
        refused(
            respond(&bash, json!({"decision": "allow_always", "suggestion": 0})),
            "bypassPermissions",
        );
        refused(
            respond(&bash, json!({"decision": "allow_always", "suggestion": 1})),
            "userSettings",
        );
        assert!(respond(&bash, json!({"decision": "allow_always", "suggestion": 2})).is_ok());
        let question = asked(
            "AskUserQuestion",
            json!({"questions": [{"question": "Which?", "options": [{"label": "A"}]}]}),
        );
        refused(
            respond(
                &question,
                json!({"decision": "allow", "answers": {"Other?": "A"}}),
            ),
            "not one of the questions",
        );
    }

    #[test]
    fn allow_always_adds_the_chosen_suggestion() {
        let bash = asked("Bash", json!({"command": "ls"}));
        assert_eq!(
            respond(&bash, json!({"decision": "allow_always", "suggestion": 1})),
            Ok((
                Decision::AllowAlways,
                json!({"behavior": "allow", "updatedInput": {"command": "ls"},
                       "updatedPermissions": [{"type": "setMode"}]})
            ))
        );
    }

    #[test]
    fn deny_says_why_and_deny_and_stop_interrupts() {
        let bash = asked("Bash", json!({"command": "rm -rf /"}));
        assert_eq!(
            respond(&bash, json!({"decision": "deny"})),
            Ok((
                Decision::Deny,
                json!({"behavior": "deny", "message": "The user denied this from the phone."})
            ))
        );
        assert_eq!(
            respond(&bash, json!({"decision": "deny", "message": "  "}))
                .unwrap()
                .1["message"],
            DENIED
        );
        assert_eq!(
            respond(
                &bash,
                json!({"decision": "deny_and_stop", "message": "not that"})
            ),
            Ok((
                Decision::DenyAndStop,
                json!({"behavior": "deny", "message": "not that", "interrupt": true})
            ))
        );
        // A plan kept planning: a deny with the person's note.
        let plan = asked("ExitPlanMode", json!({"plan": "1. …"}));
        assert_eq!(
            respond(&plan, json!({"decision": "deny", "message": "also tests"}))
                .unwrap()
                .1,
            json!({"behavior": "deny", "message": "also tests"})
        );
    }

    #[test]
    fn bad_bodies_are_refused() {
        let bash = asked("Bash", json!({"command": "ls"}));
        let refused = |v: Value, says: &str| {
            let got = respond(&bash, v.clone()).unwrap_err();
            assert!(got.contains(says), "{v}: {got}");
        };
        refused(json!({}), "decision must be one of");
        refused(json!({"decision": "maybe"}), "decision must be one of");
        refused(json!({"decision": "allow_always"}), "needs suggestion");
        refused(
            json!({"decision": "allow_always", "suggestion": 2}),
            "suggestion 2 is out of range: this request has 2",
        );
        refused(
            json!({"decision": "allow", "answers": {"q": "a"}}),
            "answers are only for a question; this request is a tool",
        );
        refused(
            json!({"decision": "allow", "input": "ls"}),
            "input must be an object",
        );
        refused(
            json!({"decision": "allow", "input": [1]}),
            "input must be an object",
        );
        let question = asked("AskUserQuestion", json!({"questions": []}));
        assert!(
            respond(&question, json!({"decision": "allow", "answers": {"q": 1}}))
                .unwrap_err()
                .contains("answers must map")
        );
        // Negative or fractional indexes, unknown fields: the body does not parse (read_json's 400).
        assert!(
            serde_json::from_value::<AnswerBody>(json!({"decision": "allow", "suggestion": -1}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<AnswerBody>(json!({"decision": "allow", "why": "x"})).is_err()
        );
    }

    async fn said(resp: Response<Body>) -> (u16, Value) {
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn requests_are_listed_and_answered_once() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::tests::app(dir.path());
        app.store.ensure_conversation("c", "/p", None).unwrap();
        app.store.insert_turn(TURN, "c", "x", None, &[]).unwrap();
        assert_eq!(said(list(&app)).await, (200, json!({"requests": []})));
        let bash = asked("Bash", json!({"command": "ls"}));
        app.store.insert_request(&bash, &[]).unwrap();
        let (status, listed) = said(list(&app)).await;
        assert_eq!(status, 200);
        assert_eq!(listed["requests"][0]["id"], ID);
        assert_eq!(listed["requests"][0]["state"], "pending");
        let allow = || body(json!({"decision": "allow"}));
        // Unknown ids, in any spelling.
        for id in ["00000000-0000-4000-8000-000000000002", "nope"] {
            assert_eq!(
                said(answer(&app, id, allow()).await).await,
                (404, json!({"error": "no such request"}))
            );
        }
        let (status, _) = said(answer(&app, ID, body(json!({"decision": "no"}))).await).await;
        assert_eq!(status, 400);
        assert_eq!(app.store.request(ID).unwrap().unwrap().state, "pending");
        // The turn that asked is not live here: nobody can take the answer, and the request expires.
        assert_eq!(
            said(answer(&app, ID, allow()).await).await,
            (
                410,
                json!({"error": "this request is no longer waiting (expired)"})
            )
        );
        assert_eq!(app.store.request(ID).unwrap().unwrap().state, "expired");
        assert_eq!(said(list(&app)).await, (200, json!({"requests": []})));
        assert_eq!(said(answer(&app, ID, allow()).await).await.0, 410);
        // Answered already (by another phone): 409.
        let mut other = asked("Bash", json!({}));
        other.id = "00000000-0000-4000-8000-000000000003".into();
        app.store.insert_request(&other, &[]).unwrap();
        app.store.claim_request(&other.id, &json!({})).unwrap();
        assert_eq!(
            said(answer(&app, &other.id, allow()).await).await,
            (
                409,
                json!({"error": "this request has been answered already"})
            )
        );
    }
}
