//! How a turn ended, in the words its waiters and readers get: from why the daemon stopped it (a stop it started
//! wins), the CLI's result line, or how the process went.

use std::time::Duration;

use super::{Ended, Stop};
use crate::claude::{self, Outcome};
use crate::store::TurnStatus;

/// How a turn ended, from why we stopped it (if we did), the CLI's result, and its exit.
pub(super) fn ending(
    why: Option<Stop>,
    outcome: Option<&Outcome>,
    exited: Option<std::process::ExitStatus>,
    run: &claude::Run,
    timeout: Duration,
) -> Ended {
    match why {
        Some(w) => stopped_ending(w, outcome, timeout),
        None => match outcome {
            Some(o) if o.succeeded() => Ended {
                status: TurnStatus::Succeeded,
                response: o.text.clone(),
                session_id: o.session_id.clone(),
                cost: o.cost,
                num_turns: o.num_turns,
                error: None,
                not_found: false,
            },
            Some(o) => Ended {
                status: TurnStatus::Failed,
                response: o.text.clone(),
                session_id: o.session_id.clone(),
                cost: o.cost,
                num_turns: o.num_turns,
                error: Some(o.error_text()),
                not_found: false,
            },
            None => {
                let tail = run.stderr_tail();
                failed(if tail.is_empty() {
                    match exited {
                        Some(status) => format!("claude exited ({status}) without a result"),
                        None => "claude stopped without a result".into(),
                    }
                } else {
                    last_lines(&tail, 5)
                })
            }
        },
    }
}

pub(super) fn failed(error: String) -> Ended {
    Ended {
        status: TurnStatus::Failed,
        response: None,
        session_id: None,
        cost: None,
        num_turns: None,
        error: Some(error),
        not_found: false,
    }
}

/// A stop we asked for decides the status; a successful result printed meanwhile still gives its session.
pub(super) fn stopped_ending(why: Stop, outcome: Option<&Outcome>, timeout: Duration) -> Ended {
    let (status, error) = match why {
        Stop::Cancel => (TurnStatus::Cancelled, "cancelled".to_string()),
        Stop::Timeout => (
            TurnStatus::TimedOut,
            format!("timed out after {} s (the turn timeout)", timeout.as_secs()),
        ),
        Stop::Shutdown => (
            TurnStatus::Interrupted,
            "the server stopped while this turn ran".into(),
        ),
        Stop::LineTooLong => (
            TurnStatus::Failed,
            format!(
                "claude printed a line longer than {} MiB; the turn was stopped",
                claude::MAX_LINE >> 20
            ),
        ),
    };
    Ended {
        status,
        response: outcome.and_then(|o| o.text.clone()),
        session_id: outcome.and_then(|o| o.session_id.clone()),
        cost: outcome.and_then(|o| o.cost),
        num_turns: outcome.and_then(|o| o.num_turns),
        error: Some(error),
        not_found: false,
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
