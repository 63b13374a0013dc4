//! The turn_changes table: what a turn's change set is made from (the project's state before and after it).

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};

/// How a turn's changes were recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeRecord {
    /// The turn.
    pub turn_id: String,
    /// The directory Claude ran in (its real path).
    pub cwd: String,
    /// The repository's git dir, when the project is in one (else the change set comes from the tool calls).
    pub git_dir: Option<String>,
    /// The project's path inside its repository (`sub/dir/`, empty at the top).
    pub prefix: String,
    /// The tree of the working tree before the turn.
    pub before: Option<String>,
    /// The tree after it, once recorded.
    pub after: Option<String>,
    /// The "after" state is recorded (or could not be).
    pub done: bool,
    /// Why the state could not be recorded.
    pub error: Option<String>,
}

const COLUMNS: &str = "turn_id, cwd, git_dir, prefix, before_tree, after_tree, done, error";

fn row(r: &rusqlite::Row) -> Result<ChangeRecord> {
    Ok(ChangeRecord {
        turn_id: r.get(0)?,
        cwd: r.get(1)?,
        git_dir: r.get(2)?,
        prefix: r.get(3)?,
        before: r.get(4)?,
        after: r.get(5)?,
        done: r.get(6)?,
        error: r.get(7)?,
    })
}

impl Store {
    /// Records the state before a turn (replacing any earlier record of it).
    pub fn begin_changes(&self, r: &ChangeRecord) -> Result<()> {
        self.conn().execute(
            &format!("INSERT OR REPLACE INTO turn_changes ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![r.turn_id, r.cwd, r.git_dir, r.prefix, r.before, r.after, r.done, r.error],
        )?;
        Ok(())
    }

    /// Records the state after a turn, or why it could not be recorded.
    pub fn end_changes(
        &self,
        turn_id: &str,
        after: Option<&str>,
        error: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE turn_changes SET after_tree = ?2, done = 1, error = coalesce(error, ?3) WHERE turn_id = ?1",
            params![turn_id, after, error],
        )?;
        Ok(())
    }

    /// A turn's record, if one was made.
    pub fn turn_changes(&self, turn_id: &str) -> Result<Option<ChangeRecord>> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM turn_changes WHERE turn_id = ?1"),
                [turn_id],
                row,
            )
            .optional()
    }

    /// Every tree a stored record names, with its repository's git dir: what a sweep of our object stores keeps.
    pub fn change_trees(&self) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT git_dir, before_tree FROM turn_changes WHERE git_dir IS NOT NULL AND before_tree IS NOT NULL
             UNION
             SELECT git_dir, after_tree FROM turn_changes WHERE git_dir IS NOT NULL AND after_tree IS NOT NULL",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    }

    /// The records of a conversation's turns, oldest first.
    pub fn conversation_changes(&self, conversation_id: &str) -> Result<Vec<ChangeRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM turn_changes c JOIN turns t ON t.id = c.turn_id
             WHERE t.conversation_id = ?1 ORDER BY t.created_at, t.rowid",
            COLUMNS
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        stmt.query_map([conversation_id], row)?.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_begun_ended_and_listed_per_conversation() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c", "/p", None).unwrap();
        s.insert_turn("t1", "c", "hi", None, &[]).unwrap();
        let r = ChangeRecord {
            turn_id: "t1".into(),
            cwd: "/p".into(),
            git_dir: Some("/p/.git".into()),
            before: Some("abc".into()),
            ..Default::default()
        };
        s.begin_changes(&r).unwrap();
        assert_eq!(s.turn_changes("t1").unwrap().unwrap(), r);
        s.end_changes("t1", Some("def"), None).unwrap();
        let got = s.turn_changes("t1").unwrap().unwrap();
        assert!(got.done);
        assert_eq!(got.after.as_deref(), Some("def"));
        assert_eq!(s.conversation_changes("c").unwrap(), vec![got]);
        assert!(s.turn_changes("t2").unwrap().is_none());
    }
}
