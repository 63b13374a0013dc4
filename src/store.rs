//! SQLite storage: migrations, conversations, turns and their events. One connection, one writer.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

mod kinds;
mod open;
pub use self::kinds::{EventKind, TurnStatus, UnknownWord};
pub use open::{FILE_NAME, open_existing, open_private};

/// A timestamp as SQLite makes it: `2026-11-24T20:31:02.123Z`.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";

/// Append-only: each entry moves `user_version` up by one. Never edit a shipped entry.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    title           TEXT,
    project         TEXT NOT NULL,
    session_id      TEXT,
    model           TEXT,
    permission_mode TEXT,
    max_budget_usd  REAL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE TABLE turns (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    client_id       TEXT,
    prompt          TEXT NOT NULL,
    status          TEXT NOT NULL,
    response        TEXT,
    session_id      TEXT,
    cost            REAL,
    num_turns       INTEGER,
    duration_ms     INTEGER,
    error           TEXT,
    pid             INTEGER,
    pid_start       INTEGER,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT
);
CREATE INDEX turns_by_conversation ON turns(conversation_id, created_at);
CREATE UNIQUE INDEX turns_by_client_id ON turns(conversation_id, client_id) WHERE client_id IS NOT NULL;
CREATE TABLE events (
    turn_id TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (turn_id, seq)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE auth_sessions (
    token_hash TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE pairing_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) WITHOUT ROWID;
"#,
    r#"
-- What a conversation brought from the prototype's sessions.json: its message count and last message, from
-- before any turn of ours.
ALTER TABLE conversations ADD COLUMN imported_turns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN imported_last_message TEXT;
ALTER TABLE conversations ADD COLUMN imported_last_at TEXT;
"#,
    r#"
ALTER TABLE conversations ADD COLUMN imported_cost REAL NOT NULL DEFAULT 0;
"#,
    r#"
-- A row holds `n` consecutive events of one kind (seq, seq + 1, …), their data lines joined by "\n": streamed
-- pieces of a reply are stored a few kB to a row instead of one small row each.
ALTER TABLE events ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
"#,
];

/// Kinds whose consecutive events share a row, and how large such a row may grow. A little over one 4 kB page:
/// SQLite then fills a whole overflow page and keeps the rest in the leaf, wasting next to nothing.
const PACKED_KINDS: &[EventKind] = &[EventKind::TextDelta, EventKind::Thinking];
const PACKED_ROW_BYTES: usize = 4600;

/// The WAL is cut back to this size when it is reset, and truncated by the checkpointer once it has grown past it.
const WAL_LIMIT: u64 = 4 << 20;

/// What a storage error means for the person using the app; the words are part of the API (docs/api.md).
pub const DISK_FULL: &str = "disk full";
pub const DAMAGED: &str = "database damaged: run `remote-agent doctor`";

/// A storage failure that is not a bug of ours: the disk is full, or the database file is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    DiskFull,
    Damaged,
}

impl Fault {
    pub fn of(e: &rusqlite::Error) -> Option<Fault> {
        use rusqlite::ErrorCode::*;
        match e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                DiskFull => Some(Fault::DiskFull),
                DatabaseCorrupt | NotADatabase => Some(Fault::Damaged),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Fault::DiskFull => DISK_FULL,
            Fault::Damaged => DAMAGED,
        }
    }
}

/// A conversation with the figures derived from its turns.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub id: String,
    pub title: Option<String>,
    pub project: String,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub max_budget_usd: Option<f64>,
    pub created_at: String,
    pub updated_at: String,
    pub turn_count: i64,
    pub total_cost_usd: f64,
    pub last_message: Option<String>,
    pub last_message_at: Option<String>,
    /// The first message (what names a conversation until it has a title).
    pub first_message: Option<String>,
    /// The turn running now, or the first one waiting.
    pub active_turn_id: Option<String>,
}

/// One message sent to Claude and what came of it.
#[derive(Debug, Clone, Serialize)]
pub struct Turn {
    pub id: String,
    pub conversation_id: String,
    pub client_id: Option<String>,
    pub prompt: String,
    pub status: TurnStatus,
    pub response: Option<String>,
    pub session_id: Option<String>,
    pub cost: Option<f64>,
    pub num_turns: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// How a turn ended, as stored.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub status: TurnStatus,
    pub response: Option<String>,
    pub session_id: Option<String>,
    pub cost: Option<f64>,
    pub num_turns: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// Store `session_id` on the conversation (only a successful result may).
    pub keep_session: bool,
}

/// One conversation of the prototype's `sessions.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub id: String,
    pub session_id: Option<String>,
    pub created_at: Option<String>,
    pub last_message_at: Option<String>,
    pub turn_count: i64,
    pub last_message: Option<String>,
    pub total_cost_usd: f64,
}

/// What a pairing link is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    Valid,
    Used,
    Expired,
    Unknown,
}

/// A process recorded for a turn that was still running when the server stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub turn_id: String,
    pub pid: i64,
    pub pid_start: i64,
}

/// Runs SQLite's `PRAGMA integrity_check` on the database at `path`, read-only; the error says what is wrong.
pub fn integrity_check(path: &Path) -> std::result::Result<(), String> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(verdict)
    }
}

/// True when the database's WAL holds something (a database can live there before its first checkpoint).
pub fn wal_has_data(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// SQLite's `PRAGMA quick_check` (the structure of every page, without cross-checking indexes: fast enough for
/// every start). A damaged database comes back as SQLITE_CORRUPT with what the check found.
fn quick_check(conn: &Connection) -> Result<()> {
    let damaged = |what: String| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(what),
        )
    };
    let found: Vec<String> = conn
        .prepare("PRAGMA quick_check(10)")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_>>()
        .map_err(|e| match Fault::of(&e) {
            Some(Fault::Damaged) => damaged(e.to_string()),
            _ => e,
        })?;
    if found.len() == 1 && found[0] == "ok" {
        Ok(())
    } else {
        Err(damaged(found.join("; ")))
    }
}

/// The database. All access goes through one connection behind a mutex: SQLite allows one writer anyway,
/// and every statement here takes microseconds.
pub struct Store {
    conn: Mutex<Connection>,
    /// Tells the checkpoint thread to stop when the store goes away.
    _checkpointer: Option<Checkpointer>,
}

/// Moves the WAL into the database on a thread of its own, once a second when there were writes. SQLite's
/// automatic checkpoint would run inside whichever commit crosses the threshold, and its fsync (several ms) would
/// land on that request.
struct Checkpointer {
    _stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut last = None;
                // Runs until the sender (the Store) is dropped.
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(std::time::Duration::from_secs(1))
                {
                    let version: Option<i64> =
                        conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok();
                    if version != last {
                        last = version;
                        if let Err(e) =
                            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        {
                            tracing::warn!("WAL checkpoint failed: {e}");
                        }
                        // A large turn leaves a large WAL; SQLite reuses it from the start but never shrinks it
                        // until the next write resets it, so give the space back now.
                        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT) {
                            let _ =
                                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                        }
                    }
                }
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Checkpointer { _stop: stop })
    }
}

pub type Result<T> = rusqlite::Result<T>;

/// One event of a turn's stream, as sent and as stored: its sequence number in the turn (from 1), its kind, and
/// its data (one line of JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    pub seq: u64,
    pub kind: EventKind,
    pub data: String,
}

/// Stores events, packing consecutive ones of a [`PACKED_KINDS`] kind into rows of up to [`PACKED_ROW_BYTES`],
/// the turn's last row included when they continue it.
fn insert_events(conn: &Connection, turn_id: &str, events: &[Arc<StreamEvent>]) -> Result<()> {
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

/// Changes to a conversation's settings; `Some(None)` clears a value.
#[derive(Debug, Default)]
pub struct ConversationPatch {
    pub title: Option<Option<String>>,
    pub model: Option<Option<String>>,
    pub permission_mode: Option<Option<String>>,
    pub max_budget_usd: Option<Option<f64>>,
}

/// A conversation's own columns.
const OWN_COLUMNS: &str = "c.id, c.title, c.project, c.session_id, c.model, c.permission_mode,
    c.max_budget_usd, c.created_at, c.updated_at";

/// The figures derived from a conversation's turns (a scan of them).
/// A turn that never started (its project not allowed, no claude executable) was no message to Claude: not counted.
fn figures() -> String {
    let (queued, running) = (TurnStatus::Queued, TurnStatus::Running);
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
     ORDER BY t.rowid LIMIT 1)"
    )
}

const TURN_COLUMNS: &str =
    "id, conversation_id, client_id, prompt, status, response, session_id, cost,
    num_turns, duration_ms, error, created_at, started_at, finished_at";

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
    })
}

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
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        quick_check(&conn)?;
        let mut store = Self::setup(conn)?;
        store.conn().pragma_update(None, "wal_autocheckpoint", 0)?;
        store
            .conn()
            .pragma_update(None, "journal_size_limit", WAL_LIMIT as i64)?;
        store._checkpointer = Some(Checkpointer::start(path)?);
        Ok(store)
    }

    /// Moves the WAL into the database and empties it (at a clean exit: the files left are the database alone).
    pub fn truncate_wal(&self) {
        if let Err(e) = self
            .conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!("WAL checkpoint failed: {e}");
        }
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every transaction here writes: take the write lock at BEGIN, where a checkpoint holding it makes us
        // wait (busy_timeout), rather than at the first write after a read, where SQLite fails at once.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        // WAL + NORMAL: a commit survives a crash or kill -9 of this process (not a power cut), and costs no fsync.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
            _checkpointer: None,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (statements are atomic), so
        // a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

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

    /// Creates the conversation unless it exists.
    pub fn ensure_conversation(&self, id: &str, project: &str) -> Result<()> {
        self.conn().execute(
            &format!(
                "INSERT INTO conversations (id, project, created_at, updated_at)
                 VALUES (?1, ?2, {NOW}, {NOW}) ON CONFLICT(id) DO NOTHING"
            ),
            params![id, project],
        )?;
        Ok(())
    }

    /// The conversation's own columns, without the figures derived from its turns (they cost a scan of them);
    /// what a turn needs to start.
    pub fn conversation_settings(&self, id: &str) -> Result<Option<Conversation>> {
        let sql = format!(
            "SELECT {OWN_COLUMNS}, 0, 0.0, NULL, NULL, NULL, NULL FROM conversations c WHERE c.id = ?1"
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

    /// Records a new queued turn.
    pub fn insert_turn(
        &self,
        id: &str,
        conversation_id: &str,
        prompt: &str,
        client_id: Option<&str>,
        events: &[Arc<StreamEvent>],
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

    /// Records a browser sign-in, by the hash of its token, valid for `ttl_secs`.
    pub fn create_session(&self, token_hash: &str, ttl_secs: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO auth_sessions (token_hash, created_at, expires_at)
             VALUES (?1, unixepoch(), unixepoch() + ?2)",
            params![token_hash, ttl_secs],
        )?;
        Ok(())
    }

    /// True for a sign-in that exists, has not expired and was not revoked.
    pub fn session_valid(&self, token_hash: &str) -> Result<bool> {
        self.conn()
            .prepare_cached(
                "SELECT 1 FROM auth_sessions
                 WHERE token_hash = ?1 AND revoked = 0 AND expires_at > unixepoch()",
            )?
            .exists([token_hash])
    }

    /// Revokes one sign-in; false if there was none.
    pub fn revoke_session(&self, token_hash: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE auth_sessions SET revoked = 1 WHERE token_hash = ?1 AND revoked = 0",
            [token_hash],
        )? > 0)
    }

    /// Revokes every sign-in; returns how many were live.
    pub fn revoke_all_sessions(&self) -> Result<usize> {
        self.conn().execute(
            "UPDATE auth_sessions SET revoked = 1 WHERE revoked = 0 AND expires_at > unixepoch()",
            [],
        )
    }

    /// Records a one-time pairing token, by its hash, valid for `ttl_secs`.
    pub fn create_pairing(&self, token_hash: &str, ttl_secs: i64) -> Result<()> {
        self.conn().execute(
            "INSERT INTO pairing_tokens (token_hash, created_at, expires_at)
             VALUES (?1, unixepoch(), unixepoch() + ?2)",
            params![token_hash, ttl_secs],
        )?;
        Ok(())
    }

    /// A pairing token's state, without spending it.
    pub fn pairing(&self, token_hash: &str) -> Result<Pairing> {
        let row: Option<(bool, bool)> = self
            .conn()
            .query_row(
                "SELECT used_at IS NOT NULL, expires_at <= unixepoch() FROM pairing_tokens WHERE token_hash = ?1",
                [token_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            None => Pairing::Unknown,
            Some((true, _)) => Pairing::Used,
            Some((false, true)) => Pairing::Expired,
            Some((false, false)) => Pairing::Valid,
        })
    }

    /// Spends a valid pairing token and records the sign-in it buys, in one transaction; the token's state
    /// otherwise.
    pub fn spend_pairing(
        &self,
        token_hash: &str,
        session_hash: &str,
        ttl_secs: i64,
    ) -> Result<Pairing> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let spent = tx.execute(
            "UPDATE pairing_tokens SET used_at = unixepoch()
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > unixepoch()",
            [token_hash],
        )?;
        if spent == 0 {
            drop(tx);
            drop(conn);
            return self.pairing(token_hash);
        }
        tx.execute(
            "INSERT INTO auth_sessions (token_hash, created_at, expires_at)
             VALUES (?1, unixepoch(), unixepoch() + ?2)",
            params![session_hash, ttl_secs],
        )?;
        tx.commit()?;
        Ok(Pairing::Valid)
    }

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

    /// At start-up: every turn a previous run left queued or running is marked `interrupted`; returns the
    /// processes those turns had recorded, to be stopped.
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
                "SELECT id, pid, pid_start FROM turns
                 WHERE status IN ('{queued}', '{running}') AND pid IS NOT NULL AND pid_start IS NOT NULL",
            ))?;
            stmt.query_map([], |r| {
                Ok(Orphan {
                    turn_id: r.get(0)?,
                    pid: r.get(1)?,
                    pid_start: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>>>()?
        };
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

    fn ev(seq: u64, kind: &str, data: &str) -> Arc<StreamEvent> {
        Arc::new(StreamEvent {
            seq,
            kind: kind.parse().unwrap(),
            data: data.into(),
        })
    }

    #[test]
    fn figures_are_derived_from_turns() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c1", "/p").unwrap();
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

    #[test]
    fn sessions_and_pairing_tokens() {
        let s = Store::open_in_memory().unwrap();
        s.create_session("h1", 60).unwrap();
        s.create_session("h2", -1).unwrap();
        assert!(s.session_valid("h1").unwrap());
        assert!(!s.session_valid("h2").unwrap(), "expired");
        assert!(!s.session_valid("nope").unwrap());
        assert_eq!(s.revoke_all_sessions().unwrap(), 1);
        assert!(!s.session_valid("h1").unwrap());
        s.create_pairing("p", 600).unwrap();
        assert_eq!(s.pairing("p").unwrap(), Pairing::Valid);
        assert_eq!(s.spend_pairing("p", "h3", 60).unwrap(), Pairing::Valid);
        assert!(s.session_valid("h3").unwrap());
        assert_eq!(s.spend_pairing("p", "h4", 60).unwrap(), Pairing::Used);
        assert!(!s.session_valid("h4").unwrap());
        s.create_pairing("old", -1).unwrap();
        assert_eq!(s.spend_pairing("old", "h5", 60).unwrap(), Pairing::Expired);
        assert_eq!(s.pairing("other").unwrap(), Pairing::Unknown);
    }

    #[test]
    fn client_id_is_unique_per_conversation() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c1", "/p").unwrap();
        s.insert_turn("t1", "c1", "x", Some("k"), &[]).unwrap();
        assert!(s.insert_turn("t2", "c1", "x", Some("k"), &[]).is_err());
    }

    #[test]
    fn unfinished_turns_become_interrupted() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c1", "/p").unwrap();
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

    #[test]
    fn migrations_are_idempotent_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        Store::open(&path)
            .unwrap()
            .ensure_conversation("c", "/p")
            .unwrap();
        let s = Store::open(&path).unwrap();
        assert!(s.conversation("c").unwrap().is_some());
        assert!(s.delete_conversation("c").unwrap());
        assert!(!s.delete_conversation("c").unwrap());
    }

    #[test]
    fn packed_rows_give_back_every_event_from_any_point() {
        let s = Store::open_in_memory().unwrap();
        s.ensure_conversation("c", "/p").unwrap();
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
