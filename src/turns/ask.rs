//! What Claude asks during a turn: a `can_use_tool` request of the CLI becomes a stored pending request and a
//! `request` event; the person's answer goes back to the CLI as a `control_response` and ends it with a
//! `request_ended` event, as does the CLI withdrawing it or the turn ending first (docs/api.md, "Requests").

use std::collections::HashMap;

use serde_json::{Value, json};

use super::run::Stream;
use crate::claude::{Input, control};
use crate::store::{EventKind, PendingRequest, RequestKind, RequestState};

/// An answer for the turn that asked: the request (claimed in the store) and the CLI's response to it.
pub type Answer = (PendingRequest, Value);

/// The requests of the running turn still waiting, by the CLI's request id → ours and when it was asked (None once
/// the person's answer is on its way: no longer timed).
#[derive(Default)]
pub(super) struct Asks {
    pending: HashMap<String, (String, Option<tokio::time::Instant>)>,
}

impl Asks {
    /// The CLI asks: a permission request is stored and shown; any other request is refused (the CLI then goes on
    /// without it).
    pub(super) fn asked(
        &mut self,
        stream: &mut Stream,
        input: &Input,
        cli_id: &str,
        request: &Value,
    ) {
        if request["subtype"] != "can_use_tool" {
            let what = request["subtype"].as_str().unwrap_or("?");
            input.send(control::error_line(
                cli_id,
                &format!("remote-agent does not handle {what} requests"),
            ));
            return;
        }
        let text = |k: &str| request[k].as_str().map(String::from);
        let tool_name = text("tool_name").unwrap_or_default();
        let r = PendingRequest {
            id: uuid::Uuid::new_v4().to_string(),
            conversation_id: String::new(),
            turn_id: stream.turn_id.to_string(),
            cli_request_id: cli_id.to_string(),
            kind: RequestKind::of_tool(&tool_name),
            tool_name,
            input: request.get("input").cloned().unwrap_or(json!({})),
            suggestions: request
                .get("permission_suggestions")
                .filter(|v| v.is_array())
                .cloned()
                .unwrap_or(json!([])),
            blocked_path: text("blocked_path"),
            // The SDK's types allow a structured reason; keep it readable either way.
            decision_reason: request
                .get("decision_reason")
                .filter(|v| !v.is_null())
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                }),
            title: text("title"),
            display_name: text("display_name"),
            description: text("description"),
            tool_use_id: text("tool_use_id"),
            created_at: now_utc(),
            state: RequestState::Pending,
        };
        stream.flush();
        let conversation_id = stream.conversation_id.to_string();
        let r = PendingRequest {
            conversation_id,
            ..r
        };
        stream.emit(
            EventKind::Request,
            serde_json::to_value(&r).unwrap_or_default(),
        );
        let store = stream.store;
        if stream.flush_with(|events| store.insert_request(&r, events)) {
            super::tell::waiting(stream, &r);
            self.pending.insert(
                cli_id.to_string(),
                (r.id, Some(tokio::time::Instant::now())),
            );
        } else {
            // Unstored, it was shown to nobody; the turn is failing. The CLI must not wait on it meanwhile.
            input.send(control::response_line(
                cli_id,
                &json!({"behavior": "deny", "message": "remote-agent could not store this request"}),
            ));
        }
    }

    /// The CLI took a request back: it must not be answered.
    pub(super) fn withdrawn(&mut self, stream: &mut Stream, cli_id: &str) {
        if let Some((id, _)) = self.pending.remove(cli_id) {
            end(stream, &id, RequestState::Withdrawn, None);
        }
    }

    /// The person answered (the request is already claimed in the store): the response goes to the CLI, once.
    /// True when the answer also stops the turn ("deny and stop": the CLI interrupts itself).
    pub(super) fn answer(
        &mut self,
        stream: &mut Stream,
        input: &Input,
        request: &PendingRequest,
        response: &Value,
    ) -> bool {
        if self.pending.remove(&request.cli_request_id).is_none() {
            return false;
        }
        input.send(control::response_line(&request.cli_request_id, response));
        stream.emit(
            EventKind::RequestEnded,
            json!({ "id": request.id, "state": RequestState::Answered, "decision": decision(response) }),
        );
        stream.flush();
        response["interrupt"] == true
    }

    /// The turn ends with requests still waiting: the process that asked will not take their answers.
    pub(super) fn expire_all(&mut self, stream: &mut Stream) {
        for (_, (id, _)) in self.pending.drain() {
            end(stream, &id, RequestState::Expired, None);
        }
    }

    /// When the oldest waiting request has waited `limit` (the `deny_unanswered_after` setting), if one waits.
    pub(super) fn next_deadline(
        &self,
        limit: Option<std::time::Duration>,
    ) -> Option<tokio::time::Instant> {
        let limit = limit?;
        self.pending
            .values()
            .filter_map(|(_, at)| Some((*at)? + limit))
            .min()
    }

    /// Denies every request that has waited `limit`, as an answer from the phone would (one that the person answered
    /// meanwhile keeps that answer).
    pub(super) fn deny_overdue(
        &mut self,
        stream: &mut Stream,
        input: &Input,
        limit: std::time::Duration,
    ) {
        let now = tokio::time::Instant::now();
        let overdue: Vec<String> = self
            .pending
            .values()
            .filter(|(_, at)| at.is_some_and(|at| at + limit <= now))
            .map(|(id, _)| id.clone())
            .collect();
        let deny = json!({
            "behavior": "deny",
            "message": format!(
                "Nobody answered within {} min, so this was denied.",
                (limit.as_secs_f64() / 60.0 * 10.0).round() / 10.0
            ),
        });
        for id in overdue {
            match stream.store.claim_request(&id, &deny) {
                Ok(request) => {
                    self.answer(stream, input, &request, &deny);
                }
                // Answered meanwhile: that answer is on its way to the turn; stop timing it.
                Err(_) => {
                    if let Some(entry) = self.pending.values_mut().find(|(i, _)| *i == id) {
                        entry.1 = None;
                    }
                }
            }
        }
    }
}

fn end(stream: &mut Stream, id: &str, state: RequestState, decision: Option<&str>) {
    stream.flush();
    let mut data = json!({ "id": id, "state": state });
    if let Some(d) = decision {
        data["decision"] = json!(d);
    }
    stream.emit(EventKind::RequestEnded, data);
    let store = stream.store;
    stream.flush_with(|events| store.end_request(id, state, events));
}

/// The decision a response carries, in the API's words.
fn decision(response: &Value) -> &'static str {
    match (
        response["behavior"].as_str(),
        response.get("updatedPermissions").is_some(),
        response["interrupt"] == true,
    ) {
        (Some("allow"), true, _) => "allow_always",
        (Some("allow"), false, _) => "allow",
        (_, _, true) => "deny_and_stop",
        _ => "deny",
    }
}

/// Now, as the store writes times: `2026-11-24T20:31:02.123Z`.
fn now_utc() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), by eras of 400 years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_read_back_from_the_response() {
        assert_eq!(
            decision(&json!({"behavior":"allow","updatedInput":{}})),
            "allow"
        );
        assert_eq!(
            decision(&json!({"behavior":"allow","updatedInput":{},"updatedPermissions":[{}]})),
            "allow_always"
        );
        assert_eq!(decision(&json!({"behavior":"deny","message":"no"})), "deny");
        assert_eq!(
            decision(&json!({"behavior":"deny","message":"no","interrupt":true})),
            "deny_and_stop"
        );
    }

    #[test]
    fn times_look_like_the_stores() {
        let t = now_utc();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}
