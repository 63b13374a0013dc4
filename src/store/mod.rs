//! SQLite storage: the connection, its migrations and checks; the tables each have a file of their own
//! (conversations, their adoptions of the CLI's sessions, turns, their events, requests, sign-ins and pairing, the
//! import). One connection, one writer.

mod adopted;
mod attachments;
mod auth;
mod changes;
mod conversations;
mod events;
mod import;
mod kinds;
mod open;
mod push;
mod requests;
mod turns;

pub use adopted::Adoption;
pub use attachments::{Attachment, AttachmentMeta};
pub use auth::Pairing;
pub use changes::ChangeRecord;
pub use conversations::{Conversation, ConversationPatch};
pub use events::StreamEvent;
pub use import::Imported;
pub use kinds::{EventKind, RequestKind, RequestState, TurnStatus, UnknownWord};
pub use open::{FILE_NAME, open_existing, open_private};
pub use push::{MAX_PUSH_SUBSCRIPTIONS, Outgoing, PushSubscription, Subscribed};
pub use requests::{ClaimError, PendingRequest};
pub use turns::{Finish, Orphan, Turn};

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

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
    r#"
-- What Claude asked the person (a tool to approve, questions, a plan) and how it ended. `input`, `suggestions` and
-- `answer` are JSON text; `answer` is the response sent back to the CLI.
CREATE TABLE requests (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn_id         TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    cli_request_id  TEXT NOT NULL,
    kind            TEXT NOT NULL,
    tool_name       TEXT NOT NULL,
    input           TEXT NOT NULL,
    suggestions     TEXT NOT NULL,
    blocked_path    TEXT,
    decision_reason TEXT,
    title           TEXT,
    display_name    TEXT,
    description     TEXT,
    tool_use_id     TEXT,
    created_at      TEXT NOT NULL,
    state           TEXT NOT NULL,
    answer          TEXT,
    answered_at     TEXT
);
CREATE INDEX requests_by_conversation ON requests(conversation_id);
CREATE INDEX requests_by_turn ON requests(turn_id);
CREATE INDEX requests_pending ON requests(created_at) WHERE state = 'pending';
"#,
    r#"
-- For an edit Claude asks to make: the unified diff it would make to the file, or why there is none.
ALTER TABLE requests ADD COLUMN diff TEXT;
ALTER TABLE requests ADD COLUMN diff_note TEXT;
"#,
    r#"
-- Web Push (docs/architecture.md): the browsers' subscriptions (the endpoint is a capability URL, a secret) and the
-- messages still to send to them. A subscription made under a cookie sign-in goes with that sign-in.
CREATE TABLE push_subscriptions (
    id           TEXT PRIMARY KEY,
    endpoint     TEXT NOT NULL UNIQUE,
    p256dh       TEXT NOT NULL,
    auth         TEXT NOT NULL,
    hide_content INTEGER NOT NULL DEFAULT 0,
    session_hash TEXT,
    created_at   INTEGER NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX push_subscriptions_by_session ON push_subscriptions(session_hash);
CREATE TABLE push_outbox (
    id              INTEGER PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES push_subscriptions(id) ON DELETE CASCADE,
    payload         TEXT NOT NULL,
    urgency         TEXT NOT NULL,
    ttl             INTEGER NOT NULL,
    topic           TEXT,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL
);
CREATE INDEX push_outbox_due ON push_outbox(next_at);
CREATE INDEX push_outbox_by_subscription ON push_outbox(subscription_id);
CREATE TRIGGER push_subscriptions_revoked AFTER UPDATE OF revoked ON auth_sessions WHEN NEW.revoked <> 0
BEGIN
    DELETE FROM push_subscriptions WHERE session_hash = NEW.token_hash;
END;
CREATE TRIGGER push_subscriptions_session_deleted AFTER DELETE ON auth_sessions
BEGIN
    DELETE FROM push_subscriptions WHERE session_hash = OLD.token_hash;
END;
"#,
    r#"
-- A conversation adopted from one of the CLI's own session files: the file, and its size when adopted (the
-- history shown from the file is the part before that offset). One conversation per session.
CREATE TABLE adoptions (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
    session_id      TEXT NOT NULL UNIQUE,
    path            TEXT NOT NULL,
    size            INTEGER NOT NULL,
    created_at      TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- What a message brought from the phone: images (sent to Claude as image blocks) and other files (saved in the
-- project under .remote-agent/uploads, at `path`). The bytes of both are kept here, for the transcript's
-- thumbnails and downloads; they go with the turn.
CREATE TABLE attachments (
    id         TEXT PRIMARY KEY,
    turn_id    TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    path       TEXT,
    data       BLOB NOT NULL
);
CREATE INDEX attachments_by_turn ON attachments(turn_id, seq);
"#,
    r#"
-- What a turn changed in its project: in a git repository the trees of the working tree before and after the
-- turn (written to our own object store, see src/changes); outside one, the turn's edit tool calls say it.
CREATE TABLE turn_changes (
    turn_id     TEXT PRIMARY KEY REFERENCES turns(id) ON DELETE CASCADE,
    cwd         TEXT NOT NULL,
    git_dir     TEXT,
    prefix      TEXT NOT NULL DEFAULT '',
    before_tree TEXT,
    after_tree  TEXT,
    done        INTEGER NOT NULL DEFAULT 0,
    error       TEXT
) WITHOUT ROWID;
"#,
];

/// The WAL is cut back to this size when it is reset, and truncated by the checkpointer once it has grown past it.
const WAL_LIMIT: u64 = 4 << 20;

/// What a storage error means for the person using the app; the words are part of the API (docs/api.md).
pub(crate) const DISK_FULL: &str = "disk full";
pub(crate) const DAMAGED: &str = "database damaged: run `remote-agent doctor`";

/// A storage failure that is not a bug of ours: the disk is full, or the database file is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The disk (or the user's quota) is full.
    DiskFull,
    /// The database file is corrupt, or not a database.
    Damaged,
}

impl Fault {
    /// The fault behind a storage error, if it is one.
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

    /// What the API says of it.
    pub fn message(self) -> &'static str {
        match self {
            Fault::DiskFull => DISK_FULL,
            Fault::Damaged => DAMAGED,
        }
    }
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

/// What the store's operations return: SQLite's errors, unwrapped.
pub type Result<T> = rusqlite::Result<T>;

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
}

/// An event as the tests of every table write it.
#[cfg(test)]
fn ev(seq: u64, kind: &str, data: &str) -> std::sync::Arc<StreamEvent> {
    std::sync::Arc::new(StreamEvent {
        seq,
        kind: kind.parse().unwrap(),
        data: data.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_idempotent_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        Store::open(&path)
            .unwrap()
            .ensure_conversation("c", "/p", None)
            .unwrap();
        let s = Store::open(&path).unwrap();
        assert!(s.conversation("c").unwrap().is_some());
        assert!(s.delete_conversation("c").unwrap());
        assert!(!s.delete_conversation("c").unwrap());
    }
}
