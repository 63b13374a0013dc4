//! What a turn tells the push sender: that it ended, and that Claude waits for an answer, after what they tell is
//! stored and shown. Queuing a notice writes a row per subscription, so it runs on a blocking thread of its own:
//! neither a push service nor a hundred browsers ever hold up the turn (its next event, or the conversation's
//! next turn).

use super::Ended;
use super::run::Stream;
use crate::push::Notice;
use crate::store::{PendingRequest, TurnStatus};

/// What the notification of an ended turn says, taken before the waiters get the ending: its status and the
/// reply (or, for a turn that did not succeed, why). None for an end nobody should be woken for: a server
/// stopping interrupts every turn at once and, once back, the app shows them.
pub(super) fn ending(ended: &Ended) -> Option<(TurnStatus, Option<String>)> {
    let text = match ended.status {
        TurnStatus::Succeeded => ended.response.clone(),
        TurnStatus::Interrupted | TurnStatus::Queued | TurnStatus::Running => return None,
        _ => ended.error.clone().or_else(|| ended.response.clone()),
    };
    Some((ended.status, text))
}

/// Queues the notice that the turn ended, with its conversation's title and project.
pub(super) fn turn_ended(stream: &Stream, (status, text): (TurnStatus, Option<String>)) {
    let Some((title, project)) = conversation(stream) else {
        return;
    };
    queue(
        stream,
        Notice::TurnEnded {
            conversation_id: stream.conversation_id.to_string(),
            title,
            project,
            turn_id: stream.turn_id.to_string(),
            status,
            text,
        },
    );
}

/// Queues the notice that Claude waits for an answer to `request` (stored and shown already).
pub(super) fn waiting(stream: &Stream, request: &PendingRequest) {
    let Some((title, project)) = conversation(stream) else {
        return;
    };
    queue(
        stream,
        Notice::Waiting {
            title,
            project,
            request: request.clone(),
        },
    );
}

fn queue(stream: &Stream, notice: Notice) {
    // Decided now, not when the blocking pool gets to it: the app may leave in between.
    if stream.push.held_back(&notice) {
        return;
    }
    let push = stream.push.clone();
    tokio::task::spawn_blocking(move || push.notify(notice));
}

/// The conversation's title and project; None when it cannot be read (deleted meanwhile, or storage failing:
/// a notification is not worth failing anything for).
fn conversation(stream: &Stream) -> Option<(Option<String>, String)> {
    match stream.store.conversation_settings(stream.conversation_id) {
        Ok(Some(c)) => Some((c.title, c.project)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(
                turn = stream.turn_id,
                "no notification: cannot read the conversation: {e}"
            );
            None
        }
    }
}
