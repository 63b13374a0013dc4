//! The prototype's conversations, brought in from its `sessions.json`.

use rusqlite::params;

use super::{NOW, Result, Store};

/// One conversation of the prototype's `sessions.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The conversation's id, kept.
    pub id: String,
    /// Claude's session, so the next message resumes it.
    pub session_id: Option<String>,
    /// When the prototype made it.
    pub created_at: Option<String>,
    /// When its latest message was sent.
    pub last_message_at: Option<String>,
    /// How many messages the prototype counted.
    pub turn_count: i64,
    /// Its latest message.
    pub last_message: Option<String>,
    /// What it cost, in US dollars.
    pub total_cost_usd: f64,
}

impl Store {
    /// Imports the prototype's conversations in one transaction; ids that exist already are left alone. Returns
    /// the ids imported.
    pub fn import(&self, conversations: &[Imported], project: &str) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut done = Vec::new();
        for c in conversations {
            let n = tx.execute(
                &format!(
                    "INSERT INTO conversations (id, project, session_id, created_at, updated_at, imported_turns,
                     imported_last_message, imported_last_at, imported_cost)
                     VALUES (?1, ?2, ?3, coalesce(?4, {NOW}), coalesce(?5, ?4, {NOW}), ?6, ?7, ?5, ?8)
                     ON CONFLICT(id) DO NOTHING"
                ),
                params![
                    c.id,
                    project,
                    c.session_id,
                    c.created_at,
                    c.last_message_at,
                    c.turn_count,
                    c.last_message,
                    c.total_cost_usd
                ],
            )?;
            if n == 1 {
                done.push(c.id.clone());
            }
        }
        tx.commit()?;
        Ok(done)
    }
}
