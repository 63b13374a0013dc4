//! The adoptions table: conversations made from one of the CLI's own session files, one per session.

use rusqlite::{OptionalExtension, params};

use super::{NOW, Result, Store};

/// Where an adopted conversation's earlier history lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The CLI's session id (also the conversation's `session_id`, resumed by its next turn).
    pub session_id: String,
    /// The session file.
    pub path: String,
    /// The file's size when it was adopted: the history shown from it ends there.
    pub size: u64,
}

impl Store {
    /// Makes conversation `id` (in `project`, titled `title`) from the session `a`, unless that session was adopted
    /// already or a conversation of ours runs on it (then that one is the answer). Returns the conversation's id
    /// and whether it was made now.
    pub fn adopt(
        &self,
        id: &str,
        project: &str,
        title: Option<&str>,
        a: &Adoption,
    ) -> Result<(String, bool)> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // Adopted before, or one of our own conversations runs on it already: a second conversation on the same
        // session would be a second writer to its file.
        let existing: Option<String> = tx
            .query_row(
                "SELECT conversation_id FROM adoptions WHERE session_id = ?1
                 UNION ALL
                 SELECT id FROM conversations WHERE session_id = ?1
                 LIMIT 1",
                [&a.session_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(existing) = existing {
            return Ok((existing, false));
        }
        tx.execute(
            &format!(
                "INSERT INTO conversations (id, title, project, session_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, {NOW}, {NOW})"
            ),
            params![id, title, project, a.session_id],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO adoptions (conversation_id, session_id, path, size, created_at)
                 VALUES (?1, ?2, ?3, ?4, {NOW})"
            ),
            params![id, a.session_id, a.path, a.size as i64],
        )?;
        tx.commit()?;
        Ok((id.to_string(), true))
    }

    /// The adoption behind conversation `id`, if it was adopted.
    pub fn adoption(&self, id: &str) -> Result<Option<Adoption>> {
        self.conn()
            .query_row(
                "SELECT session_id, path, size FROM adoptions WHERE conversation_id = ?1",
                [id],
                |r| {
                    Ok(Adoption {
                        session_id: r.get(0)?,
                        path: r.get(1)?,
                        size: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                },
            )
            .optional()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_adopted_once_and_forgotten_with_its_conversation() {
        let s = Store::open_in_memory().unwrap();
        let a = Adoption {
            session_id: "s-1".into(),
            path: "/c/projects/-p/s-1.jsonl".into(),
            size: 42,
        };
        assert_eq!(
            s.adopt("c1", "/p", Some("t"), &a).unwrap(),
            ("c1".into(), true)
        );
        assert_eq!(s.adopt("c2", "/p", None, &a).unwrap(), ("c1".into(), false));
        assert!(s.conversation("c2").unwrap().is_none());
        let c = s.conversation("c1").unwrap().unwrap();
        assert_eq!(
            (c.session_id.as_deref(), c.title.as_deref()),
            (Some("s-1"), Some("t"))
        );
        assert_eq!(s.adoption("c1").unwrap(), Some(a.clone()));
        assert!(s.delete_conversation("c1").unwrap());
        assert_eq!(s.adoption("c1").unwrap(), None);
        assert_eq!(s.adopt("c3", "/p", None, &a).unwrap(), ("c3".into(), true));
    }

    #[test]
    fn a_session_one_of_our_conversations_runs_on_is_not_adopted_again() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("ours", "/p", None).unwrap();
        s.conn()
            .execute(
                "UPDATE conversations SET session_id = 's-2' WHERE id = 'ours'",
                [],
            )
            .unwrap();
        let a = Adoption {
            session_id: "s-2".into(),
            path: "/c/projects/-p/s-2.jsonl".into(),
            size: 7,
        };
        assert_eq!(
            s.adopt("c1", "/p", None, &a).unwrap(),
            ("ours".into(), false)
        );
        assert!(s.conversation("c1").unwrap().is_none());
        assert_eq!(s.adoption("ours").unwrap(), None);
    }
}
