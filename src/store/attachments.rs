//! The attachments table: the images and files a message brought, each with its bytes, kept with its turn.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{Result, Store};

/// An attachment with its bytes: what a message brings, and what `GET /api/attachments/{id}` serves.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Made by the server (a UUID).
    pub id: String,
    /// The name as sent (checked), or as saved in the project for a file.
    pub name: String,
    /// image/jpeg, image/png, image/gif, image/webp for an image; what the client said for a file.
    pub media_type: String,
    /// Where a file was saved, relative to the project (`.remote-agent/uploads/NAME`); None for an image.
    pub path: Option<String>,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Attachment {
    /// An image goes to Claude as an image block; anything else is a file saved in the project.
    pub fn is_image(&self) -> bool {
        self.path.is_none()
    }

    /// What the transcript says of it.
    pub fn meta(&self) -> AttachmentMeta {
        AttachmentMeta {
            id: self.id.clone(),
            name: self.name.clone(),
            media_type: self.media_type.clone(),
            size: self.data.len() as u64,
            kind: if self.is_image() { "image" } else { "file" },
            path: self.path.clone(),
        }
    }
}

/// What the transcript says of an attachment (no bytes).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttachmentMeta {
    /// Its id, for `GET /api/attachments/{id}`.
    pub id: String,
    /// Its name (a file's as saved).
    pub name: String,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// "image" or "file".
    pub kind: &'static str,
    /// Where a file was saved, relative to the project.
    pub path: Option<String>,
}

/// Stores a turn's attachments (inside the transaction that stores the turn).
pub(super) fn insert_attachments(
    tx: &Transaction<'_>,
    turn_id: &str,
    attachments: &[Attachment],
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO attachments (id, turn_id, seq, name, media_type, size, path, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (seq, a) in attachments.iter().enumerate() {
        stmt.execute(params![
            a.id,
            turn_id,
            seq as i64,
            a.name,
            a.media_type,
            a.data.len() as i64,
            a.path,
            a.data
        ])?;
    }
    Ok(())
}

impl Store {
    /// The attachment with its bytes, and the conversation it belongs to.
    pub fn attachment(&self, id: &str) -> Result<Option<Attachment>> {
        self.conn()
            .query_row(
                "SELECT id, name, media_type, path, data FROM attachments WHERE id = ?1",
                [id],
                |r| {
                    Ok(Attachment {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        media_type: r.get(2)?,
                        path: r.get(3)?,
                        data: r.get(4)?,
                    })
                },
            )
            .optional()
    }

    /// The attachments of these turns (without their bytes), by turn, in the order they were sent.
    pub fn attachments_of(
        &self,
        turn_ids: &[&str],
    ) -> Result<HashMap<String, Vec<AttachmentMeta>>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT turn_id, id, name, media_type, size, path FROM attachments WHERE turn_id = ?1
             ORDER BY seq",
        )?;
        let mut out: HashMap<String, Vec<AttachmentMeta>> = HashMap::new();
        for turn in turn_ids {
            let rows = stmt.query_map([turn], |r| {
                let path: Option<String> = r.get(5)?;
                Ok(AttachmentMeta {
                    id: r.get(1)?,
                    name: r.get(2)?,
                    media_type: r.get(3)?,
                    size: r.get::<_, i64>(4)? as u64,
                    kind: if path.is_none() { "image" } else { "file" },
                    path,
                })
            })?;
            for row in rows {
                out.entry(turn.to_string()).or_default().push(row?);
            }
        }
        Ok(out)
    }

    /// The bytes of a conversation's attachments, all told.
    pub fn attachment_bytes(&self, conversation_id: &str) -> Result<u64> {
        self.conn().query_row(
            "SELECT COALESCE(SUM(a.size), 0) FROM attachments a JOIN turns t ON t.id = a.turn_id
             WHERE t.conversation_id = ?1",
            [conversation_id],
            |r| r.get::<_, i64>(0).map(|n| n as u64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_go_with_their_turn() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c", "/p", None).unwrap();
        let image = Attachment {
            id: "a1".into(),
            name: "shot.png".into(),
            media_type: "image/png".into(),
            path: None,
            data: vec![1, 2, 3],
        };
        let file = Attachment {
            id: "a2".into(),
            name: "r.pdf".into(),
            media_type: "application/pdf".into(),
            path: Some(".remote-agent/uploads/r.pdf".into()),
            data: vec![9; 10],
        };
        s.insert_turn_with("t", "c", "x", None, &[], &[image.clone(), file.clone()])
            .unwrap();
        let metas = s.attachments_of(&["t", "nope"]).unwrap();
        assert_eq!(metas["t"], vec![image.meta(), file.meta()]);
        assert!(!metas.contains_key("nope"));
        assert_eq!(s.attachment("a1").unwrap().unwrap().data, vec![1, 2, 3]);
        assert_eq!(s.attachment_bytes("c").unwrap(), 13);
        assert!(s.delete_conversation("c").unwrap());
        assert!(s.attachment("a1").unwrap().is_none());
    }
}
