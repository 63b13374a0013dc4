//! The turns table: a message sent to Claude, its status and result, and the process that runs it.

use std::sync::Arc;

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::attachments::{Attachment, insert_attachments};
use super::events::{StreamEvent, insert_events};
use super::{EventKind, NOW, Result, Store, TurnStatus};

/// One message sent to Claude and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    /// Made by the server.
    pub id: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// The client's id for the message, which makes a retried send safe.
    pub client_id: Option<String>,
    /// The message sent.
    pub prompt: String,
    /// Where it is in its life.
    pub status: TurnStatus,
    /// Claude's reply.
    pub response: Option<String>,
    /// Claude's session the turn ran in.
    pub session_id: Option<String>,
    /// What it cost, in US dollars, as the CLI reported.
    pub cost: Option<f64>,
    /// The CLI's count of its own turns.
    pub num_turns: Option<i64>,
    /// How long the CLI took, as it reported.
    pub duration_ms: Option<i64>,
    /// Why it did not succeed, for a person.
    pub error: Option<String>,
    /// When the message came.
    pub created_at: String,
    /// When Claude started on it.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
}

/// How a turn ended, as stored.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    /// How it ended.
    pub status: TurnStatus,
    /// Claude's reply.
    pub response: Option<String>,
    /// Claude's session, from the CLI's result.
    pub session_id: Option<String>,
    /// What it cost, in US dollars.
    pub cost: Option<f64>,
    /// The CLI's count of its own turns.
    pub num_turns: Option<i64>,
    /// How long the CLI took.
    pub duration_ms: Option<i64>,
    /// Why it did not succeed.
    pub error: Option<String>,
    /// Store `session_id` on the conversation (only a successful result may).
    pub keep_session: bool,
}

/// A process recorded for a turn that was still running when the server stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    /// The turn it ran.
    pub turn_id: String,
    /// The conversation whose process it was (the processes' marker).
    pub conversation_id: String,
    /// The CLI's process id.
    pub pid: i64,
    /// When that process started (in clock ticks since boot), so a reused pid is not taken for it.
    pub pid_start: i64,
}

const TURN_COLUMNS: &str =
    "id, conversation_id, client_id, prompt, status, response, session_id, cost,
    num_turns, duration_ms, error, created_at, started_at, finished_at";

fn turn_row(r: &Row) -> Result<Turn> {
    Ok(Turn {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        client_id: r.get(2)?,
        prompt: r.get(3)?,
        status: r.get(4)?,
        response: r.get(5)?,
        session_id: r.get(6)?,
        cost: r.get(7)?,
        num_turns: r.get(8)?,
        duration_ms: r.get(9)?,
        error: r.get(10)?,
        created_at: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
    })
}

impl Store {
    /// Records a new queued turn.
    pub fn insert_turn(
        &self,
        id: &str,
        conversation_id: &str,
        prompt: &str,
        client_id: Option<&str>,
        events: &[Arc<StreamEvent>],
    ) -> Result<Turn> {
        self.insert_turn_with(id, conversation_id, prompt, client_id, events, &[])
    }

    /// [`Store::insert_turn`] with the attachments the message brought, in the same transaction.
    pub fn insert_turn_with(
        &self,
        id: &str,
        conversation_id: &str,
        prompt: &str,
        client_id: Option<&str>,
        events: &[Arc<StreamEvent>],
        attachments: &[Attachment],
    ) -> Result<Turn> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            &format!(
                "INSERT INTO turns (id, conversation_id, client_id, prompt, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, '{}', {NOW})",
                TurnStatus::Queued
            ),
            params![id, conversation_id, client_id, prompt],
        )?;
        tx.execute(
            &format!("UPDATE conversations SET updated_at = {NOW} WHERE id = ?1"),
            [conversation_id],
        )?;
        insert_events(&tx, id, events)?;
        insert_attachments(&tx, id, attachments)?;
        let turn = tx.query_row(
            &format!("SELECT {TURN_COLUMNS} FROM turns WHERE id = ?1"),
            [id],
            turn_row,
        )?;
        tx.commit()?;
        Ok(turn)
    }

    /// The turn, if it exists.
    pub fn turn(&self, id: &str) -> Result<Option<Turn>> {
        self.conn()
            .query_row(
                &format!("SELECT {TURN_COLUMNS} FROM turns WHERE id = ?1"),
                [id],
                turn_row,
            )
            .optional()
    }

    /// The turn a conversation already has for this client id.
    pub fn turn_by_client_id(
        &self,
        conversation_id: &str,
        client_id: &str,
    ) -> Result<Option<Turn>> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = ?1 AND client_id = ?2"
                ),
                [conversation_id, client_id],
                turn_row,
            )
            .optional()
    }

    /// Marks a turn running and records its process (so a later start can stop what a crash left behind), with
    /// the events so far, in one transaction.
    pub fn start_turn(
        &self,
        id: &str,
        pid: Option<u32>,
        pid_start: Option<u64>,
        events: &[Arc<StreamEvent>],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            &format!(
                "UPDATE turns SET status = '{}', started_at = {NOW}, pid = ?2, pid_start = ?3
                 WHERE id = ?1",
                TurnStatus::Running
            ),
            params![id, pid, pid_start.map(|s| s as i64)],
        )?;
        insert_events(&tx, id, events)?;
        tx.commit()
    }

    /// Records how a turn ended, its last events, and the session it leaves the conversation in, in one
    /// transaction.
    pub fn finish_turn(&self, id: &str, f: &Finish, events: &[Arc<StreamEvent>]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_events(&tx, id, events)?;
        tx.execute(
            &format!(
                "UPDATE turns SET status = ?2, response = ?3, session_id = coalesce(?4, session_id), cost = ?5,
                 num_turns = ?6,
                 duration_ms = ?7, error = ?8, finished_at = {NOW}, pid = NULL, pid_start = NULL
                 WHERE id = ?1"
            ),
            params![
                id,
                f.status,
                f.response,
                f.session_id,
                f.cost,
                f.num_turns,
                f.duration_ms,
                f.error
            ],
        )?;
        let set_session = if f.keep_session && f.session_id.is_some() {
            ", session_id = (SELECT session_id FROM turns WHERE id = ?1)"
        } else {
            ""
        };
        tx.execute(
            &format!(
                "UPDATE conversations SET updated_at = {NOW}{set_session}
                 WHERE id = (SELECT conversation_id FROM turns WHERE id = ?1)"
            ),
            [id],
        )?;
        tx.commit()
    }

    /// Records the session the CLI announced for a turn, on the turn and its conversation, as soon as it is
    /// known: the next message resumes it even if this turn does not succeed.
    pub fn set_session(&self, turn_id: &str, session_id: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE turns SET session_id = ?2 WHERE id = ?1",
            params![turn_id, session_id],
        )?;
        tx.execute(
            "UPDATE conversations SET session_id = ?2
             WHERE id = (SELECT conversation_id FROM turns WHERE id = ?1)",
            params![turn_id, session_id],
        )?;
        tx.commit()
    }

    /// A page of a conversation's turns in order: the `limit` turns before `before` (a turn id; the latest
    /// when None), and whether older ones exist.
    pub fn turns_page(
        &self,
        conversation_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Turn>, bool)> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = ?1
             AND rowid < coalesce((SELECT rowid FROM turns WHERE id = ?2 AND conversation_id = ?1), 1 << 62)
             ORDER BY rowid DESC LIMIT ?3"
        ))?;
        let mut turns = stmt
            .query_map(params![conversation_id, before, limit as i64 + 1], turn_row)?
            .collect::<Result<Vec<_>>>()?;
        let more = turns.len() > limit;
        turns.truncate(limit);
        turns.reverse();
        Ok((turns, more))
    }

    /// Up to `limit` of a conversation's turns in order, after `after` (a turn id; from the first when None): an
    /// export reads a long conversation this way, a page at a time.
    pub fn turns_after(
        &self,
        conversation_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Turn>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TURN_COLUMNS} FROM turns WHERE conversation_id = ?1
             AND rowid > coalesce((SELECT rowid FROM turns WHERE id = ?2 AND conversation_id = ?1), 0)
             ORDER BY rowid LIMIT ?3"
        ))?;
        stmt.query_map(params![conversation_id, after, limit as i64], turn_row)?
            .collect()
    }

    /// At start-up: every turn a previous run left queued or running is marked `interrupted`, and every pending
    /// request expired; returns the processes those turns had recorded, to be stopped.
    pub fn interrupt_unfinished(&self) -> Result<Vec<Orphan>> {
        let (queued, running, interrupted) = (
            TurnStatus::Queued,
            TurnStatus::Running,
            TurnStatus::Interrupted,
        );
        let (error, done) = (EventKind::Error, EventKind::Done);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let orphans = {
            let mut stmt = tx.prepare(&format!(
                "SELECT id, pid, pid_start, conversation_id FROM turns
                 WHERE status IN ('{queued}', '{running}') AND pid IS NOT NULL AND pid_start IS NOT NULL",
            ))?;
            stmt.query_map([], |r| {
                Ok(Orphan {
                    turn_id: r.get(0)?,
                    pid: r.get(1)?,
                    pid_start: r.get(2)?,
                    conversation_id: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>>>()?
        };
        // What they asked is no longer waiting: the process that asked is gone.
        super::requests::expire_pending(&tx)?;
        // Their project's state after them was never recorded, and never will be.
        tx.execute(
            "UPDATE turn_changes SET done = 1,
             error = coalesce(error, 'the server stopped before the project was recorded after the turn')
             WHERE done = 0",
            [],
        )?;
        // Close their streams the way a live turn would have, so subscribers reach `done`.
        tx.execute_batch(&format!(
            r#"INSERT INTO events (turn_id, seq, kind, data)
                 SELECT t.id, coalesce(max(e.seq + e.n - 1), 0) + 1, '{error}',
                        '{{"error":"the server stopped while this turn ran"}}'
                 FROM turns t LEFT JOIN events e ON e.turn_id = t.id
                 WHERE t.status IN ('{queued}', '{running}') GROUP BY t.id;
               INSERT INTO events (turn_id, seq, kind, data)
                 SELECT t.id, max(e.seq + e.n - 1) + 1, '{done}', '{{"status":"{interrupted}"}}'
                 FROM turns t JOIN events e ON e.turn_id = t.id
                 WHERE t.status IN ('{queued}', '{running}') GROUP BY t.id;"#,
        ))?;
        tx.execute(
            &format!(
                "UPDATE turns SET status = '{interrupted}', finished_at = {NOW}, pid = NULL, pid_start = NULL,
                 error = 'the server stopped while this turn ran'
                 WHERE status IN ('{queued}', '{running}')"
            ),
            [],
        )?;
        tx.commit()?;
        Ok(orphans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ev;

    #[test]
    fn client_id_is_unique_per_conversation() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c1", "/p", None).unwrap();
        s.insert_turn("t1", "c1", "x", Some("k"), &[]).unwrap();
        assert!(s.insert_turn("t2", "c1", "x", Some("k"), &[]).is_err());
    }

    #[test]
    fn unfinished_turns_become_interrupted() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c1", "/p", None).unwrap();
        s.insert_turn("t1", "c1", "x", None, &[ev(1, "status", "{}")])
            .unwrap();
        s.insert_turn("t2", "c1", "y", None, &[]).unwrap();
        s.start_turn("t1", Some(42), Some(7), &[ev(2, "status", "{}")])
            .unwrap();
        let orphans = s.interrupt_unfinished().unwrap();
        assert_eq!(
            orphans,
            vec![Orphan {
                turn_id: "t1".into(),
                conversation_id: "c1".into(),
                pid: 42,
                pid_start: 7
            }]
        );
        assert_eq!(s.turn("t2").unwrap().unwrap().status, "interrupted");
        // Their streams are closed: an error, then done.
        let kinds = |t: &str| -> Vec<(u64, String)> {
            s.events(t, 0, 10)
                .unwrap()
                .into_iter()
                .map(|e| (e.seq, e.kind.to_string()))
                .collect()
        };
        assert_eq!(
            kinds("t1"),
            vec![
                (1, "status".into()),
                (2, "status".into()),
                (3, "error".into()),
                (4, "done".into())
            ]
        );
        assert_eq!(kinds("t2"), vec![(1, "error".into()), (2, "done".into())]);
        assert!(s.interrupt_unfinished().unwrap().is_empty());
    }
}
