//! The requests table: what Claude asked the person (a tool to approve, questions, a plan), pending until
//! answered once, withdrawn, or expired.

use std::sync::Arc;

use serde_json::Value;

use super::{RequestKind, RequestState, Result, Store, StreamEvent};

/// One `can_use_tool` request of the CLI, as stored and as `GET /api/requests` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PendingRequest {
    /// Our id for it (a UUID): the one the API names.
    pub id: String,
    /// The conversation whose session asked.
    pub conversation_id: String,
    /// The turn that was running.
    pub turn_id: String,
    /// The CLI's `request_id`, which the answer must carry.
    #[serde(skip)]
    pub cli_request_id: String,
    /// Tool, question or plan.
    pub kind: RequestKind,
    /// The tool the CLI wants to run.
    pub tool_name: String,
    /// The tool's input, as the model gave it.
    pub input: Value,
    /// The CLI's `permission_suggestions` (rules "Always" could add), `[]` when none.
    pub suggestions: Value,
    /// The path the request is about, when the CLI names one.
    pub blocked_path: Option<String>,
    /// Why the CLI asks, when it says.
    pub decision_reason: Option<String>,
    /// The prompt as a whole sentence, when the CLI sends one.
    pub title: Option<String>,
    /// The tool's name for people, when sent.
    pub display_name: Option<String>,
    /// What the call does, when sent.
    pub description: Option<String>,
    /// The tool call it is about.
    pub tool_use_id: Option<String>,
    /// When it was asked.
    pub created_at: String,
    /// Pending, answered, withdrawn or expired.
    pub state: RequestState,
}

/// Why a request could not be claimed for an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// No request has this id.
    #[error("no such request")]
    NotFound,
    /// It was answered already.
    #[error("this request has been answered already")]
    Answered,
    /// It is no longer waiting (withdrawn or expired).
    #[error("this request is no longer waiting ({0})")]
    Gone(RequestState),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] rusqlite::Error),
}

impl Store {
    /// Stores a new pending request (its `created_at` is set by the store and returned in the row) and appends
    /// `events` to its turn's stream in the same transaction.
    pub fn insert_request(&self, r: &PendingRequest, events: &[Arc<StreamEvent>]) -> Result<()> {
        let _ = (r, events);
        unimplemented!("issue 13: store/requests.rs")
    }

    /// Moves a pending request to `state` (withdrawn or expired; answered goes through [`Store::claim_request`])
    /// and appends `events` to its turn's stream, in one transaction. A request no longer pending is left as it is.
    pub fn end_request(
        &self,
        id: &str,
        state: RequestState,
        events: &[Arc<StreamEvent>],
    ) -> Result<()> {
        let _ = (id, state, events);
        unimplemented!("issue 13: store/requests.rs")
    }

    /// Marks a pending request answered with `answer` (what goes back to the CLI), atomically: of two answers at
    /// once, one wins and the other gets [`ClaimError::Answered`].
    pub fn claim_request(
        &self,
        id: &str,
        answer: &Value,
    ) -> std::result::Result<PendingRequest, ClaimError> {
        let _ = (id, answer);
        unimplemented!("issue 13: store/requests.rs")
    }

    /// Every pending request, oldest first, across conversations.
    pub fn pending_requests(&self) -> Result<Vec<PendingRequest>> {
        unimplemented!("issue 13: store/requests.rs")
    }

    /// One request, whatever its state.
    pub fn request(&self, id: &str) -> Result<Option<PendingRequest>> {
        let _ = id;
        unimplemented!("issue 13: store/requests.rs")
    }
}
