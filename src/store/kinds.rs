//! The words a turn is told in: its status and the kinds of its stream's events, as enums. Each spells itself in
//! one place (`as_str`), and that spelling is what the JSON, the SSE `event:` lines and the database's values have
//! always been (docs/api.md), so nothing a client or an old database sees changes.
//!
//! They live in the store because the store is the lowest module that needs them: `turns` decides a status and
//! `claude` names an event's kind, both above it, and the store keeps both.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An enum spelled as the API spells it: `as_str`, `ALL`, `FromStr`, `Display`, serde and SQLite all go through
/// the one table given here.
macro_rules! spelled {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The value as the API, the stream and the database spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownWord { what: $what, word: s.to_string() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }

        // Compared with a spelling, as tests and callers holding a word from the wire do.
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

/// A word that names no value of the enum it was read as (a database written by a newer version, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {word:?}")]
pub struct UnknownWord {
    what: &'static str,
    word: String,
}

spelled! {
    /// Where a turn is in its life; the last five are how it ended. It begins queued (the default, so that
    /// `store::Finish` can be built field by field).
    #[derive(Default)]
    TurnStatus, "turn status" {
        /// Stored, waiting for its conversation or for a slot.
        #[default]
        Queued = "queued",
        /// The CLI runs it.
        Running = "running",
        /// The CLI's result said success.
        Succeeded = "succeeded",
        /// The CLI's result said otherwise, or the turn could not run or be stored.
        Failed = "failed",
        /// Stopped on request.
        Cancelled = "cancelled",
        /// Stopped by the turn timeout.
        TimedOut = "timed_out",
        /// The server stopped (or crashed) while it ran.
        Interrupted = "interrupted",
    }
}

// Ordered by spelling, so that what is listed by status (`/metrics`) comes in the order it always has.
impl Ord for TurnStatus {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for TurnStatus {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

spelled! {
    /// The kind of an event in a turn's stream: its SSE `event:` name and the `kind` column of `events`.
    EventKind, "event kind" {
        /// The turn's status changed (`{"status":"running"}`).
        Status = "status",
        /// The API is retrying a request.
        Retry = "retry",
        /// Thinking, as it streams or as a complete block.
        Thinking = "thinking",
        /// A piece of the reply as it streams.
        TextDelta = "text_delta",
        /// A complete assistant text block.
        Message = "message",
        /// A tool call.
        ToolUse = "tool_use",
        /// A tool's result.
        ToolResult = "tool_result",
        /// The CLI's result line.
        Result = "result",
        /// Why the turn did not succeed.
        Error = "error",
        /// Claude asks (a tool to approve, questions, a plan): a pending request, `{"id","kind","tool_name",…}`.
        Request = "request",
        /// A pending request is no longer pending: `{"id","state","decision"?}`.
        RequestEnded = "request_ended",
        /// The last event of every turn.
        Done = "done",
        /// Sent on a quiet stream so proxies keep it open; never stored and never numbered.
        Keepalive = "keepalive",
    }
}

spelled! {
    /// What Claude asks for, by tool: `AskUserQuestion` is a question, `ExitPlanMode` a plan, anything else a tool.
    RequestKind, "request kind" {
        /// Permission to run a tool.
        Tool = "tool",
        /// Questions with options (AskUserQuestion).
        Question = "question",
        /// A plan to approve (ExitPlanMode).
        Plan = "plan",
    }
}

impl RequestKind {
    /// The kind of a `can_use_tool` request for `tool_name`.
    pub fn of_tool(tool_name: &str) -> RequestKind {
        match tool_name {
            "AskUserQuestion" => RequestKind::Question,
            "ExitPlanMode" => RequestKind::Plan,
            _ => RequestKind::Tool,
        }
    }
}

spelled! {
    /// Where a pending request is in its life.
    RequestState, "request state" {
        /// Waiting for the person's answer.
        Pending = "pending",
        /// Answered (once; a second answer is refused).
        Answered = "answered",
        /// The CLI took it back (`control_cancel_request`), or its turn was stopped.
        Withdrawn = "withdrawn",
        /// The process that asked is gone (its turn ended, or the server restarted).
        Expired = "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_itself_in_each_form() {
        for s in TurnStatus::ALL {
            assert_eq!(s.as_str().parse::<TurnStatus>(), Ok(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<TurnStatus>(&format!("\"{s}\"")).unwrap(),
                *s
            );
        }
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(*k));
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{k}\""));
        }
        assert!("finished".parse::<TurnStatus>().is_err());
        assert_eq!(TurnStatus::TimedOut.as_str(), "timed_out");
        assert_eq!(EventKind::TextDelta.as_str(), "text_delta");
    }

    #[test]
    fn sqlite_keeps_the_spelling() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let (text, back): (String, TurnStatus) = conn
            .query_row("SELECT ?1, ?1", [TurnStatus::Interrupted], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(
            (text.as_str(), back),
            ("interrupted", TurnStatus::Interrupted)
        );
        let bad: rusqlite::Result<EventKind> = conn.query_row("SELECT 'nope'", [], |r| r.get(0));
        assert!(bad.is_err());
    }

    #[test]
    fn statuses_sort_by_spelling() {
        let mut all = TurnStatus::ALL.to_vec();
        all.sort();
        let words: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        let mut sorted = words.clone();
        sorted.sort();
        assert_eq!(words, sorted);
    }
}
