//! The requests table: what Claude asked the person (a tool to approve, questions, a plan), pending until
//! answered once, withdrawn, or expired.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};

use super::events::insert_events;
use super::{EventKind, NOW, RequestKind, RequestState, Result, Store, StreamEvent, TurnStatus};

/// One `can_use_tool` request of the CLI, as stored and as `GET /api/requests` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PendingRequest {
    /// Our id for it (a UUID): the one the API names.
    pub id: String,
    /// The conversation whose session asked.
    pub conversation_id: String,
    /// The turn that was running.
    pub turn_id: String,
    /// The CLI's `request_id`, which the answer must carry.
    #[serde(skip)]
    pub cli_request_id: String,
    /// Tool, question or plan.
    pub kind: RequestKind,
    /// The tool the CLI wants to run.
    pub tool_name: String,
    /// The tool's input, as the model gave it.
    pub input: Value,
    /// The CLI's `permission_suggestions` (rules "Always" could add), `[]` when none.
    pub suggestions: Value,
    /// The path the request is about, when the CLI names one.
    pub blocked_path: Option<String>,
    /// Why the CLI asks, when it says.
    pub decision_reason: Option<String>,
    /// The prompt as a whole sentence, when the CLI sends one.
    pub title: Option<String>,
    /// The tool's name for people, when sent.
    pub display_name: Option<String>,
    /// What the call does, when sent.
    pub description: Option<String>,
    /// The tool call it is about.
    pub tool_use_id: Option<String>,
    /// For an Edit, MultiEdit or Write: the unified diff it would make to the file (`a/…`, `b/…` headers, paths
    /// relative to the project); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// For an Edit, MultiEdit or Write without a diff: why (outside the project, binary, too large to show, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_note: Option<String>,
    /// When it was asked.
    pub created_at: String,
    /// Pending, answered, withdrawn or expired.
    pub state: RequestState,
}

/// Why a request could not be claimed for an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// No request has this id.
    #[error("no such request")]
    NotFound,
    /// It was answered already.
    #[error("this request has been answered already")]
    Answered,
    /// It is no longer waiting (withdrawn or expired).
    #[error("this request is no longer waiting ({0})")]
    Gone(RequestState),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] rusqlite::Error),
}

const REQUEST_COLUMNS: &str = "id, conversation_id, turn_id, cli_request_id, kind, tool_name, input, suggestions,
    blocked_path, decision_reason, title, display_name, description, tool_use_id, created_at, state, diff, diff_note";

/// A JSON text column read back as a value.
fn json_column(r: &Row, i: usize) -> Result<Value> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn request_row(r: &Row) -> Result<PendingRequest> {
    Ok(PendingRequest {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        turn_id: r.get(2)?,
        cli_request_id: r.get(3)?,
        kind: r.get(4)?,
        tool_name: r.get(5)?,
        input: json_column(r, 6)?,
        suggestions: json_column(r, 7)?,
        blocked_path: r.get(8)?,
        decision_reason: r.get(9)?,
        title: r.get(10)?,
        display_name: r.get(11)?,
        description: r.get(12)?,
        tool_use_id: r.get(13)?,
        created_at: r.get(14)?,
        state: r.get(15)?,
        diff: r.get(16)?,
        diff_note: r.get(17)?,
    })
}

fn request_on(conn: &Connection, id: &str) -> Result<Option<PendingRequest>> {
    conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"
    ))?
    .query_row([id], request_row)
    .optional()
}

/// At start-up, inside the transaction that marks unfinished turns interrupted (before their streams are closed):
/// every pending request becomes expired, since the process that asked is gone. A request of a turn being
/// interrupted gets its `request_ended` event, so a reader replaying the stream sees it end.
pub(super) fn expire_pending(conn: &Connection) -> Result<()> {
    let (pending, expired) = (RequestState::Pending, RequestState::Expired);
    let (queued, running) = (TurnStatus::Queued, TurnStatus::Running);
    let open: Vec<(String, String)> = conn
        .prepare(&format!(
            "SELECT r.id, r.turn_id FROM requests r JOIN turns t ON t.id = r.turn_id
             WHERE r.state = '{pending}' AND t.status IN ('{queued}', '{running}')
             ORDER BY r.created_at, r.rowid"
        ))?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_>>()?;
    for (id, turn_id) in open {
        let last: i64 = conn.query_row(
            "SELECT coalesce(max(seq + n - 1), 0) FROM events WHERE turn_id = ?1",
            [&turn_id],
            |r| r.get(0),
        )?;
        let ended = StreamEvent {
            seq: last as u64 + 1,
            kind: EventKind::RequestEnded,
            data: json!({"id": id, "state": expired}).to_string(),
        };
        insert_events(conn, &turn_id, &[Arc::new(ended)])?;
    }
    conn.execute(
        &format!("UPDATE requests SET state = '{expired}' WHERE state = '{pending}'"),
        [],
    )?;
    Ok(())
}

impl Store {
    /// Stores a new pending request and appends `events` to its turn's stream in the same transaction. Its
    /// `created_at` is the one given (so that the `request` event and the row agree), or the store's clock when
    /// empty; its state is pending whatever `r.state` says.
    pub fn insert_request(&self, r: &PendingRequest, events: &[Arc<StreamEvent>]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            &format!(
                "INSERT INTO requests (id, conversation_id, turn_id, cli_request_id, kind, tool_name, input,
                 suggestions, blocked_path, decision_reason, title, display_name, description, tool_use_id,
                 created_at, state, diff, diff_note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, coalesce(nullif(?15, ''), {NOW}),
                 '{}', ?16, ?17)",
                RequestState::Pending
            ),
            params![
                r.id,
                r.conversation_id,
                r.turn_id,
                r.cli_request_id,
                r.kind,
                r.tool_name,
                r.input.to_string(),
                r.suggestions.to_string(),
                r.blocked_path,
                r.decision_reason,
                r.title,
                r.display_name,
                r.description,
                r.tool_use_id,
                r.created_at,
                r.diff,
                r.diff_note,
            ],
        )?;
        insert_events(&tx, &r.turn_id, events)?;
        tx.commit()
    }

    /// Moves a request to `state` (withdrawn or expired; answered goes through [`Store::claim_request`]) and
    /// appends `events` to its turn's stream, in one transaction; true if it moved. A pending request moves; so does
    /// an answered one whose answer never reached the CLI (the CLI withdrew it first, or the turn that asked was
    /// gone). Any other request is left as it is and `events` are not appended, so a request ends once.
    pub fn end_request(
        &self,
        id: &str,
        state: RequestState,
        events: &[Arc<StreamEvent>],
    ) -> Result<bool> {
        debug_assert!(
            matches!(state, RequestState::Withdrawn | RequestState::Expired),
            "end_request to {state}"
        );
        let (pending, answered) = (RequestState::Pending, RequestState::Answered);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let turn_id: Option<String> = tx
            .query_row(
                &format!(
                    "UPDATE requests SET state = ?2 WHERE id = ?1 AND state IN ('{pending}', '{answered}')
                     RETURNING turn_id"
                ),
                params![id, state],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(turn_id) = &turn_id {
            insert_events(&tx, turn_id, events)?;
        }
        tx.commit()?;
        Ok(turn_id.is_some())
    }

    /// Marks a pending request answered with `answer` (what goes back to the CLI), atomically: of two answers at
    /// once, one wins and the other gets [`ClaimError::Answered`].
    pub fn claim_request(
        &self,
        id: &str,
        answer: &Value,
    ) -> std::result::Result<PendingRequest, ClaimError> {
        let conn = self.conn();
        // One conditional UPDATE decides the winner; the read after it only says who lost and why.
        let won = conn.execute(
            &format!(
                "UPDATE requests SET state = '{}', answer = ?2, answered_at = {NOW}
                 WHERE id = ?1 AND state = '{}'",
                RequestState::Answered,
                RequestState::Pending
            ),
            params![id, answer.to_string()],
        )? == 1;
        match request_on(&conn, id)? {
            None => Err(ClaimError::NotFound),
            Some(r) if won => Ok(r),
            Some(r) if r.state == RequestState::Answered => Err(ClaimError::Answered),
            Some(r) => Err(ClaimError::Gone(r.state)),
        }
    }

    /// Every pending request, oldest first, across conversations.
    pub fn pending_requests(&self) -> Result<Vec<PendingRequest>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE state = '{}' ORDER BY created_at, rowid",
            RequestState::Pending
        ))?;
        stmt.query_map([], request_row)?.collect()
    }

    /// One request, whatever its state.
    pub fn request(&self, id: &str) -> Result<Option<PendingRequest>> {
        request_on(&self.conn(), id)
    }

    /// The answer a request was claimed with (what went back to the CLI), if it was.
    #[cfg(test)]
    fn request_answer(&self, id: &str) -> Result<Option<Value>> {
        let text: Option<String> =
            self.conn()
                .query_row("SELECT answer FROM requests WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
        Ok(text.map(|t| serde_json::from_str(&t).unwrap()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ev;

    /// A conversation `c` with a running turn `t` (events 1 and 2 stored).
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.ensure_conversation("c", "/p", None).unwrap();
        s.insert_turn("t", "c", "x", None, &[ev(1, "status", "{}")])
            .unwrap();
        s.start_turn("t", None, None, &[ev(2, "status", "{}")])
            .unwrap();
        (dir, s)
    }

    fn asked(id: &str, tool_name: &str) -> PendingRequest {
        PendingRequest {
            id: id.into(),
            conversation_id: "c".into(),
            turn_id: "t".into(),
            cli_request_id: format!("cli-{id}"),
            kind: RequestKind::of_tool(tool_name),
            tool_name: tool_name.into(),
            input: json!({"command": "ls"}),
            suggestions: json!([{"type": "addRules"}]),
            blocked_path: Some("/p/x".into()),
            decision_reason: None,
            title: Some("Run ls?".into()),
            display_name: None,
            description: None,
            tool_use_id: Some("toolu_1".into()),
            created_at: String::new(),
            state: RequestState::Pending,
            diff: None,
            diff_note: None,
        }
    }

    fn kinds(s: &Store) -> Vec<(u64, String)> {
        s.events("t", 0, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.kind.to_string()))
            .collect()
    }

    #[test]
    fn a_request_is_stored_listed_and_its_event_appended() {
        let (_dir, s) = store();
        let r = PendingRequest {
            diff: Some("--- a/x\n+++ b/x\n".into()),
            ..asked("r1", "Edit")
        };
        s.insert_request(&r, &[ev(3, "request", "{}")]).unwrap();
        let mut later = asked("r2", "AskUserQuestion");
        later.diff_note = Some("not an edit, but kept".into());
        later.created_at = "2999-01-01T00:00:00.000Z".into();
        s.insert_request(&later, &[ev(4, "request", "{}")]).unwrap();
        let listed = s.pending_requests().unwrap();
        assert_eq!(
            listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["r1", "r2"]
        );
        let got = &listed[0];
        assert!(got.created_at.ends_with('Z') && got.created_at.len() == 24);
        assert_eq!(
            *got,
            PendingRequest {
                created_at: got.created_at.clone(),
                ..r
            }
        );
        assert_eq!(listed[1].kind, RequestKind::Question);
        assert_eq!(listed[1].created_at, "2999-01-01T00:00:00.000Z");
        assert_eq!(s.request("r2").unwrap().unwrap(), listed[1]);
        assert_eq!(s.request("nope").unwrap(), None);
        assert_eq!(
            kinds(&s),
            [
                (1, "status".into()),
                (2, "status".into()),
                (3, "request".into()),
                (4, "request".into())
            ]
        );
        // The JSON the API gives: no CLI request id.
        let v = serde_json::to_value(got).unwrap();
        assert_eq!(v["state"], "pending");
        assert_eq!(v["kind"], "tool");
        assert!(v.get("cli_request_id").is_none());
        // The diff (or why there is none) only when there is one.
        assert_eq!(v["diff"], "--- a/x\n+++ b/x\n");
        assert!(v.get("diff_note").is_none());
        let v2 = serde_json::to_value(&listed[1]).unwrap();
        assert_eq!(v2["diff_note"], "not an edit, but kept");
        assert!(v2.get("diff").is_none());
        assert_eq!(s.conversation("c").unwrap().unwrap().waiting, 2);
    }

    #[test]
    fn of_two_claims_one_wins() {
        let (_dir, s) = store();
        s.insert_request(&asked("r1", "Bash"), &[]).unwrap();
        let answer = json!({"behavior": "allow", "updatedInput": {}});
        let won = s.claim_request("r1", &answer).unwrap();
        assert_eq!((won.id.as_str(), won.state), ("r1", RequestState::Answered));
        assert!(matches!(
            s.claim_request("r1", &json!({"behavior": "deny"})),
            Err(ClaimError::Answered)
        ));
        assert_eq!(s.request_answer("r1").unwrap(), Some(answer));
        assert!(matches!(
            s.claim_request("nope", &json!({})),
            Err(ClaimError::NotFound)
        ));
        assert!(s.pending_requests().unwrap().is_empty());
        assert_eq!(s.conversation("c").unwrap().unwrap().waiting, 0);
        // At the same time, from threads: still one winner.
        let s = Arc::new(s);
        s.insert_request(&asked("r2", "Bash"), &[]).unwrap();
        let wins = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.claim_request("r2", &json!({})).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1);
    }

    #[test]
    fn an_ended_request_ends_once() {
        let (_dir, s) = store();
        s.insert_request(&asked("r1", "Bash"), &[]).unwrap();
        s.end_request(
            "r1",
            RequestState::Withdrawn,
            &[ev(3, "request_ended", "{}")],
        )
        .unwrap();
        assert_eq!(
            s.request("r1").unwrap().unwrap().state,
            RequestState::Withdrawn
        );
        // Ended already: neither the state nor the stream changes.
        s.end_request("r1", RequestState::Expired, &[ev(4, "request_ended", "{}")])
            .unwrap();
        assert_eq!(
            s.request("r1").unwrap().unwrap().state,
            RequestState::Withdrawn
        );
        assert_eq!(kinds(&s).last().unwrap(), &(3, "request_ended".into()));
        assert!(matches!(
            s.claim_request("r1", &json!({})),
            Err(ClaimError::Gone(RequestState::Withdrawn))
        ));
        // An answer that could not be delivered: the answered request expires (the turn was gone)…
        s.insert_request(&asked("r2", "Bash"), &[]).unwrap();
        s.claim_request("r2", &json!({})).unwrap();
        assert!(s.end_request("r2", RequestState::Expired, &[]).unwrap());
        assert_eq!(
            s.request("r2").unwrap().unwrap().state,
            RequestState::Expired
        );
        // …or is withdrawn (the CLI took it back before the answer reached it), once.
        s.insert_request(&asked("r3", "Bash"), &[]).unwrap();
        s.claim_request("r3", &json!({})).unwrap();
        assert!(s.end_request("r3", RequestState::Withdrawn, &[]).unwrap());
        assert!(!s.end_request("r3", RequestState::Expired, &[]).unwrap());
        assert_eq!(
            s.request("r3").unwrap().unwrap().state,
            RequestState::Withdrawn
        );
        // Unknown: nothing happens.
        assert!(!s.end_request("nope", RequestState::Expired, &[]).unwrap());
    }

    #[test]
    fn a_restart_expires_pending_requests_and_says_so_in_the_stream() {
        let (dir, s) = store();
        s.insert_request(&asked("r1", "Bash"), &[ev(3, "request", "{}")])
            .unwrap();
        s.insert_request(&asked("r2", "Bash"), &[ev(4, "request", "{}")])
            .unwrap();
        s.claim_request("r2", &json!({})).unwrap();
        drop(s);
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.interrupt_unfinished().unwrap();
        assert!(s.pending_requests().unwrap().is_empty());
        assert_eq!(
            s.request("r1").unwrap().unwrap().state,
            RequestState::Expired
        );
        assert_eq!(
            s.request("r2").unwrap().unwrap().state,
            RequestState::Answered
        );
        let events = s.events("t", 4, 10).unwrap();
        assert_eq!(
            events
                .iter()
                .map(|e| (e.seq, e.kind.as_str()))
                .collect::<Vec<_>>(),
            [(5, "request_ended"), (6, "error"), (7, "done")]
        );
        assert_eq!(
            serde_json::from_str::<Value>(&events[0].data).unwrap(),
            json!({"id": "r1", "state": "expired"})
        );
    }

    #[test]
    fn deleting_the_conversation_deletes_its_requests() {
        let (_dir, s) = store();
        s.insert_request(&asked("r1", "Bash"), &[]).unwrap();
        assert!(s.delete_conversation("c").unwrap());
        assert_eq!(s.request("r1").unwrap(), None);
        assert!(s.pending_requests().unwrap().is_empty());
    }
}
