//! The events table: a turn's stream, consecutive pieces of a reply packed a few kB to a row.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{EventKind, Result, Store};

/// Kinds whose consecutive events share a row, and how large such a row may grow. A little over one 4 kB page:
/// SQLite then fills a whole overflow page and keeps the rest in the leaf, wasting next to nothing.
const PACKED_KINDS: &[EventKind] = &[EventKind::TextDelta, EventKind::Thinking];
const PACKED_ROW_BYTES: usize = 4600;

/// One event of a turn's stream, as sent and as stored: its sequence number in the turn (from 1), its kind, and
/// its data (one line of JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// Its place in the turn's stream, from 1.
    pub seq: u64,
    /// What it says.
    pub kind: EventKind,
    /// Its JSON, on one line.
    pub data: String,
}

/// Stores events, packing consecutive ones of a [`PACKED_KINDS`] kind into rows of up to [`PACKED_ROW_BYTES`],
/// the turn's last row included when they continue it.
pub(super) fn insert_events(
    conn: &Connection,
    turn_id: &str,
    events: &[Arc<StreamEvent>],
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    /// The row being filled: its first seq, kind, size and count, and whether it is stored already (then `data`
    /// is what to append to it).
    struct Open {
        seq: u64,
        kind: EventKind,
        bytes: usize,
        n: u64,
        data: String,
        stored: bool,
    }
    let write = |row: &Open| -> Result<()> {
        if row.stored {
            conn.prepare_cached(
                "UPDATE events SET data = data || ?3, n = ?4 WHERE turn_id = ?1 AND seq = ?2",
            )?
            .execute(params![turn_id, row.seq as i64, row.data, row.n as i64])?;
        } else {
            conn.prepare_cached(
                "INSERT INTO events (turn_id, seq, kind, data, n) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                turn_id,
                row.seq as i64,
                row.kind,
                row.data,
                row.n as i64
            ])?;
        }
        Ok(())
    };
    let mut open: Option<Open> = conn
        .prepare_cached(
            "SELECT seq, kind, length(CAST(data AS BLOB)), n FROM events WHERE turn_id = ?1
             ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([turn_id], |r| {
            Ok(Open {
                seq: r.get::<_, i64>(0)? as u64,
                kind: r.get(1)?,
                bytes: r.get::<_, i64>(2)? as usize,
                n: r.get::<_, i64>(3)? as u64,
                data: String::new(),
                stored: true,
            })
        })
        .optional()?;
    for e in events {
        if let Some(row) = &mut open
            && PACKED_KINDS.contains(&e.kind)
            && row.kind == e.kind
            && row.seq + row.n == e.seq
            && row.bytes + 1 + e.data.len() <= PACKED_ROW_BYTES
        {
            row.data.push('\n');
            row.data.push_str(&e.data);
            row.bytes += 1 + e.data.len();
            row.n += 1;
            continue;
        }
        if let Some(row) = open.take()
            && !(row.stored && row.data.is_empty())
        {
            write(&row)?;
        }
        open = Some(Open {
            seq: e.seq,
            kind: e.kind,
            bytes: e.data.len(),
            n: 1,
            data: e.data.clone(),
            stored: false,
        });
    }
    if let Some(row) = open
        && !(row.stored && row.data.is_empty())
    {
        write(&row)?;
    }
    Ok(())
}

/// The events of stored rows (see [`insert_events`]) after `after`, at most `limit`.
fn unpack(
    rows: impl Iterator<Item = Result<(u64, EventKind, String, u64)>>,
    after: u64,
    limit: usize,
) -> Result<Vec<StreamEvent>> {
    let mut out = Vec::new();
    for row in rows {
        let (seq, kind, data, n) = row?;
        let pieces: Box<dyn Iterator<Item = &str>> = if n > 1 {
            Box::new(data.split('\n'))
        } else {
            Box::new(std::iter::once(data.as_str()))
        };
        for (i, piece) in pieces.enumerate() {
            let seq = seq + i as u64;
            if seq <= after {
                continue;
            }
            if out.len() == limit {
                return Ok(out);
            }
            out.push(StreamEvent {
                seq,
                kind,
                data: piece.to_string(),
            });
        }
    }
    Ok(out)
}

fn packed_row(r: &Row) -> Result<(u64, EventKind, String, u64)> {
    Ok((
        r.get::<_, i64>(0)? as u64,
        r.get(1)?,
        r.get(2)?,
        r.get::<_, i64>(3)? as u64,
    ))
}

impl Store {
    /// Appends events of a turn's stream in one transaction.
    pub fn append_events(&self, turn_id: &str, events: &[Arc<StreamEvent>]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_events(&tx, turn_id, events)?;
        tx.commit()
    }

    /// Up to `limit` of a turn's events after `after`, in order.
    pub fn events(&self, turn_id: &str, after: u64, limit: usize) -> Result<Vec<StreamEvent>> {
        let conn = self.conn();
        // From the row holding `after` (a row can hold several events), then the rows after it.
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, data, n FROM events WHERE turn_id = ?1
             AND seq >= coalesce((SELECT max(seq) FROM events WHERE turn_id = ?1 AND seq <= ?2), 0)
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![turn_id, after as i64, limit as i64 + 1], packed_row)?;
        unpack(rows, after, limit)
    }

    /// The events of these turns that a transcript shows (complete blocks, tools), in order per turn.
    pub fn transcript_events(&self, turn_ids: &[&str]) -> Result<Vec<(String, StreamEvent)>> {
        let conn = self.conn();
        let (message, thinking, tool_use, tool_result) = (
            EventKind::Message,
            EventKind::Thinking,
            EventKind::ToolUse,
            EventKind::ToolResult,
        );
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT seq, kind, data, n FROM events WHERE turn_id = ?1
             AND kind IN ('{message}', '{thinking}', '{tool_use}', '{tool_result}') ORDER BY seq",
        ))?;
        let mut out = Vec::new();
        for id in turn_ids {
            let rows = stmt.query_map([id], packed_row)?;
            for event in unpack(rows, 0, usize::MAX)? {
                out.push((id.to_string(), event));
            }
        }
        Ok(out)
    }

    /// The reply a turn had streamed past its last complete text block (what an interrupted turn was saying
    /// when it stopped), if any.
    pub fn partial_text(&self, turn_id: &str) -> Result<Option<String>> {
        let conn = self.conn();
        let (text_delta, message) = (EventKind::TextDelta, EventKind::Message);
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT seq, kind, data, n FROM events WHERE turn_id = ?1 AND kind = '{text_delta}'
             AND seq > coalesce((SELECT max(seq) FROM events WHERE turn_id = ?1 AND kind = '{message}'), 0)
             ORDER BY seq",
        ))?;
        let rows = stmt.query_map([turn_id], packed_row)?;
        let mut text = String::new();
        for e in unpack(rows, 0, usize::MAX)? {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.data)
                && let Some(piece) = v["text"].as_str()
            {
                text.push_str(piece);
            }
        }
        Ok(Some(text).filter(|t| !t.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ev;

    #[test]
    fn packed_rows_give_back_every_event_from_any_point() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c", "/p", None).unwrap();
        s.insert_turn("t", "c", "x", None, &[ev(1, "status", "{}")])
            .unwrap();
        // Deltas a few at a time, as they arrive, with other kinds between them and one too large to share.
        let mut all = vec![ev(1, "status", "{}")];
        let mut seq = 1;
        for round in 0..300 {
            let mut batch = Vec::new();
            for i in 0..(round % 4 + 1) {
                seq += 1;
                let kind = if (round + i) % 97 == 0 {
                    "tool_use"
                } else {
                    "text_delta"
                };
                let data = if round == 150 {
                    format!("{{\"text\":\"{}\"}}", "y".repeat(6000))
                } else {
                    format!("{{\"text\":\"{seq} \\n\"}}")
                };
                batch.push(ev(seq, kind, &data));
            }
            s.append_events("t", &batch).unwrap();
            all.extend(batch);
        }
        let rows: i64 = s
            .conn()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert!(rows < seq as i64 / 10, "{rows} rows for {seq} events");
        let all: Vec<StreamEvent> = all.iter().map(|e| (**e).clone()).collect();
        for after in 0..=seq {
            for limit in [1, 7, 512] {
                let got = s.events("t", after, limit).unwrap();
                let want: Vec<_> = all
                    .iter()
                    .skip(after as usize)
                    .take(limit)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "after {after} limit {limit}");
            }
        }
        // A restart closes the stream after the last event of the last row.
        s.interrupt_unfinished().unwrap();
        let end = s.events("t", seq, 10).unwrap();
        assert_eq!(
            end.iter()
                .map(|e| (e.seq, e.kind.as_str()))
                .collect::<Vec<_>>(),
            vec![(seq + 1, "error"), (seq + 2, "done")]
        );
    }
}
