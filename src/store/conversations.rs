//! The conversations table: a conversation's settings, and the figures derived from its turns.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::{NOW, RequestState, Result, Store, TurnStatus};

/// A conversation with the figures derived from its turns.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    /// Chosen by the client, or made by the server.
    pub id: String,
    /// Set by the user; untitled conversations are named by their first message.
    pub title: Option<String>,
    /// The project directory Claude runs in (one of the allowed ones).
    pub project: String,
    /// Claude's session, resumed by the next turn.
    pub session_id: Option<String>,
    /// `--model` for this conversation's turns; unset, the CLI's default.
    pub model: Option<String>,
    /// `--permission-mode` for this conversation's turns; unset, the server's.
    pub permission_mode: Option<String>,
    /// `--max-budget-usd` for each of this conversation's turns.
    pub max_budget_usd: Option<f64>,
    /// When it was made (ISO 8601, UTC, milliseconds).
    pub created_at: String,
    /// When it or one of its turns last changed.
    pub updated_at: String,
    /// Its turns, of any status.
    pub turn_count: i64,
    /// What its turns cost, in US dollars, as the CLI reported.
    pub total_cost_usd: f64,
    /// The latest message (200 characters at most).
    pub last_message: Option<String>,
    /// When the latest message was sent.
    pub last_message_at: Option<String>,
    /// The first message (what names a conversation until it has a title).
    pub first_message: Option<String>,
    /// The turn running now, or the first one waiting.
    pub active_turn_id: Option<String>,
    /// Its requests waiting for an answer (a tool to approve, questions, a plan).
    pub waiting: i64,
}

/// Changes to a conversation's settings; `Some(None)` clears a value.
#[derive(Debug, Default)]
pub struct ConversationPatch {
    /// A new title.
    pub title: Option<Option<String>>,
    /// A new model.
    pub model: Option<Option<String>>,
    /// A new permission mode (already checked against the allowed ones).
    pub permission_mode: Option<Option<String>>,
    /// A new budget per turn.
    pub max_budget_usd: Option<Option<f64>>,
}

/// A conversation's own columns.
const OWN_COLUMNS: &str = "c.id, c.title, c.project, c.session_id, c.model, c.permission_mode,
    c.max_budget_usd, c.created_at, c.updated_at";

/// The figures derived from a conversation's turns (a scan of them) and its pending requests.
/// A turn that never started (its project not allowed, no claude executable) was no message to Claude: not counted.
fn figures() -> String {
    let (queued, running) = (TurnStatus::Queued, TurnStatus::Running);
    let pending = RequestState::Pending;
    format!(
        "c.imported_turns + (SELECT count(*) FROM turns t WHERE t.conversation_id = c.id
        AND (t.started_at IS NOT NULL OR t.status = '{queued}')),
    round(c.imported_cost + (SELECT coalesce(sum(t.cost), 0.0) FROM turns t WHERE t.conversation_id = c.id), 9),
    coalesce((SELECT substr(t.prompt, 1, 200) FROM turns t WHERE t.conversation_id = c.id
              ORDER BY t.created_at DESC, t.rowid DESC LIMIT 1), substr(c.imported_last_message, 1, 200)),
    coalesce((SELECT t.created_at FROM turns t WHERE t.conversation_id = c.id
              ORDER BY t.created_at DESC, t.rowid DESC LIMIT 1), c.imported_last_at),
    CASE WHEN c.imported_turns > 0 THEN substr(c.imported_last_message, 1, 200)
         ELSE (SELECT substr(t.prompt, 1, 200) FROM turns t WHERE t.conversation_id = c.id
               ORDER BY t.created_at, t.rowid LIMIT 1) END,
    (SELECT t.id FROM turns t WHERE t.conversation_id = c.id AND t.status IN ('{queued}', '{running}')
     ORDER BY t.rowid LIMIT 1),
    (SELECT count(*) FROM requests r WHERE r.conversation_id = c.id AND r.state = '{pending}')"
    )
}

fn conversation_row(r: &Row) -> Result<Conversation> {
    Ok(Conversation {
        id: r.get(0)?,
        title: r.get(1)?,
        project: r.get(2)?,
        session_id: r.get(3)?,
        model: r.get(4)?,
        permission_mode: r.get(5)?,
        max_budget_usd: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        turn_count: r.get(9)?,
        total_cost_usd: r.get(10)?,
        last_message: r.get(11)?,
        last_message_at: r.get(12)?,
        first_message: r.get(13)?,
        active_turn_id: r.get(14)?,
        waiting: r.get(15)?,
    })
}

impl Store {
    /// The conversation, if it exists.
    pub fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        let sql = format!(
            "SELECT {OWN_COLUMNS}, {} FROM conversations c WHERE c.id = ?1",
            figures()
        );
        self.conn()
            .query_row(&sql, [id], conversation_row)
            .optional()
    }

    /// Every conversation, most recently active first.
    pub fn conversations(&self) -> Result<Vec<Conversation>> {
        let sql = format!(
            "SELECT {OWN_COLUMNS}, {} FROM conversations c ORDER BY c.updated_at DESC, c.id",
            figures()
        );
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql)?;
        stmt.query_map([], conversation_row)?.collect()
    }

    /// Creates the conversation unless it exists (the prototype's `/api/chat` makes them so), in `permission_mode`.
    pub fn ensure_conversation(
        &self,
        id: &str,
        project: &str,
        permission_mode: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO conversations (id, project, permission_mode, created_at, updated_at)
                 VALUES (?1, ?2, ?3, {NOW}, {NOW}) ON CONFLICT(id) DO NOTHING"
            ),
            params![id, project, permission_mode],
        )?;
        Ok(())
    }

    /// The conversation's own columns, without the figures derived from its turns (they cost a scan of them);
    /// what a turn needs to start.
    pub fn conversation_settings(&self, id: &str) -> Result<Option<Conversation>> {
        let sql = format!(
            "SELECT {OWN_COLUMNS}, 0, 0.0, NULL, NULL, NULL, NULL, 0 FROM conversations c WHERE c.id = ?1"
        );
        self.conn()
            .query_row(&sql, [id], conversation_row)
            .optional()
    }

    /// Deletes the conversation with its turns and events; false if there was none.
    pub fn delete_conversation(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM conversations WHERE id = ?1", [id])?
            > 0)
    }

    /// Creates a conversation; false if the id is taken.
    pub fn create_conversation(&self, c: &Conversation) -> Result<bool> {
        let n = self.conn().execute(
            &format!(
                "INSERT INTO conversations (id, title, project, model, permission_mode, max_budget_usd,
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {NOW}, {NOW})
                 ON CONFLICT(id) DO NOTHING"
            ),
            params![
                c.id,
                c.title,
                c.project,
                c.model,
                c.permission_mode,
                c.max_budget_usd
            ],
        )?;
        Ok(n == 1)
    }

    /// Applies a patch; false if there is no such conversation.
    pub fn update_conversation(&self, id: &str, p: &ConversationPatch) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM conversations WHERE id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        // The columns the patch sets (to a value or to NULL); their names are ours, never input.
        let set: [(&str, Option<&dyn rusqlite::ToSql>); 4] = [
            ("title", p.title.as_ref().map(|v| v as _)),
            ("model", p.model.as_ref().map(|v| v as _)),
            (
                "permission_mode",
                p.permission_mode.as_ref().map(|v| v as _),
            ),
            ("max_budget_usd", p.max_budget_usd.as_ref().map(|v| v as _)),
        ];
        for (column, value) in set {
            if let Some(value) = value {
                tx.execute(
                    &format!("UPDATE conversations SET {column} = ?2 WHERE id = ?1"),
                    params![id, value],
                )?;
            }
        }
        tx.execute(
            &format!("UPDATE conversations SET updated_at = {NOW} WHERE id = ?1"),
            [id],
        )?;
        tx.commit()?;
        Ok(exists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventKind, Finish, StreamEvent, ev};

    #[test]
    fn figures_are_derived_from_turns() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c1", "/p", None).unwrap();
        s.insert_turn("t1", "c1", "first", None, &[]).unwrap();
        s.insert_turn("t2", "c1", "second", None, &[]).unwrap();
        // Both ran (a turn that never started is not counted).
        s.start_turn("t1", None, None, &[]).unwrap();
        s.start_turn("t2", None, None, &[]).unwrap();
        let ok = Finish {
            status: TurnStatus::Succeeded,
            session_id: Some("s-1".into()),
            cost: Some(0.5),
            keep_session: true,
            ..Finish::default()
        };
        s.finish_turn("t1", &ok, &[ev(1, "done", "{}")]).unwrap();
        s.finish_turn(
            "t2",
            &Finish {
                status: TurnStatus::Failed,
                session_id: Some("s-2".into()),
                cost: Some(0.25),
                ..Finish::default()
            },
            &[],
        )
        .unwrap();
        let c = s.conversation("c1").unwrap().unwrap();
        assert_eq!(c.turn_count, 2);
        assert_eq!(c.total_cost_usd, 0.75);
        assert_eq!(c.last_message.as_deref(), Some("second"));
        // The failed turn did not overwrite the session.
        assert_eq!(c.session_id.as_deref(), Some("s-1"));
        assert_eq!(
            s.events("t1", 0, 10).unwrap(),
            vec![StreamEvent {
                seq: 1,
                kind: EventKind::Done,
                data: "{}".into()
            }]
        );
    }
}
