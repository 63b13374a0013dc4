//! The turn manager: one background task per turn, FIFO per conversation, a global cap on running turns,
//! events persisted as they arrive, and stops (cancel, timeout, shutdown) through the claude stop ladder. Here:
//! submitting, stopping and subscribing; `run` runs one turn (on the process `plan` says), `hub` hands its events
//! to readers, `tell` tells the push sender that a turn ended or that Claude waits.

mod ask;
mod end;
mod hub;
mod plan;
mod run;
mod tell;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::sync::{Semaphore, watch};

pub use self::ask::Answer;
use self::hub::Hub;
pub use self::hub::{Batch, Subscription};
use crate::claude::SpawnError;
use crate::config::Shared;
use crate::store::{EventKind, Store, StreamEvent, Turn, TurnStatus};

/// Readers of one turn's stream at once.
pub const MAX_SUBSCRIBERS_PER_TURN: usize = 256;
/// Readers of all streams at once.
pub const MAX_SUBSCRIBERS: usize = 1024;

/// Messages of one conversation waiting behind the one it runs; past this a new one is refused (429), so that a
/// client in a retry loop cannot pile up work and rows without end.
pub const MAX_QUEUED_PER_CONVERSATION: usize = 32;

/// Why the daemon stopped a turn; a stop it started wins over whatever the CLI printed afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Someone asked for it (the Stop button, deleting or resetting the conversation): `cancelled`.
    Cancel,
    /// It ran past the turn timeout: `timed_out`.
    Timeout,
    /// The server is stopping: `interrupted`.
    Shutdown,
    /// The CLI printed a line longer than [`crate::claude::MAX_LINE`].
    LineTooLong,
}

/// How a turn ended, as its waiters see it.
#[derive(Debug, Clone)]
pub struct Ended {
    /// How it ended: one of the final statuses.
    pub status: TurnStatus,
    /// The reply, from the result line.
    pub response: Option<String>,
    /// The CLI's session the turn ran in.
    pub session_id: Option<String>,
    /// What the turn cost, in US dollars (the CLI's `total_cost_usd`).
    pub cost: Option<f64>,
    /// How many model turns the CLI took (its `num_turns`).
    pub num_turns: Option<i64>,
    /// Why it did not succeed, in words for the person using the app.
    pub error: Option<String>,
    /// The CLI could not be started because it was not found.
    pub not_found: bool,
}

/// A message to run.
pub struct Submit {
    /// The conversation it belongs to (which exists).
    pub conversation_id: String,
    /// The message, as the person wrote it.
    pub prompt: String,
    /// Resume this session instead of the conversation's own (the prototype's `session_id`).
    pub resume: Option<String>,
    /// Start a fresh session: resume none, not even the conversation's own (the prototype's `new`).
    pub fresh: bool,
    /// The client's own id for the message, so that a retried send runs it once.
    pub client_id: Option<String>,
    /// What the message brought (checked, files already saved in the project), stored with the turn.
    pub attachments: Vec<crate::store::Attachment>,
}

impl Submit {
    /// The message's attachments as written to the CLI: images as blocks, files by their path.
    fn attached(&self) -> Vec<crate::claude::control::Attached<'_>> {
        use crate::claude::control::Attached;
        self.attachments
            .iter()
            .map(|a| match &a.path {
                None => Attached::Image {
                    media_type: &a.media_type,
                    data: &a.data,
                },
                Some(path) => Attached::File { path },
            })
            .collect()
    }
}

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// No turn has this id.
    #[error("no such turn")]
    NotFound,
    /// The turn has [`MAX_SUBSCRIBERS_PER_TURN`] readers already.
    #[error("too many readers of this turn (at most {MAX_SUBSCRIBERS_PER_TURN})")]
    TurnFull,
    /// [`MAX_SUBSCRIBERS`] streams are open already.
    #[error("too many open streams (at most {MAX_SUBSCRIBERS})")]
    Full,
    /// The turn could not be looked up.
    #[error("storage: {0}")]
    Store(#[from] rusqlite::Error),
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The CLI is not where the settings say.
    #[error(transparent)]
    NotFound(SpawnError),
    /// The server is stopping and takes no new turns.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The conversation has [`MAX_QUEUED_PER_CONVERSATION`] messages waiting already.
    #[error(
        "too many messages waiting in this conversation (at most {MAX_QUEUED_PER_CONVERSATION}); \
         wait for them or cancel some"
    )]
    QueueFull,
    /// The turn could not be stored.
    #[error("storage: {0}")]
    Store(#[from] rusqlite::Error),
}

struct Live {
    stop: watch::Sender<Option<Stop>>,
    /// Set once the turn has its conversation and a slot, and runs.
    running: Arc<std::sync::atomic::AtomicBool>,
    answers: tokio::sync::mpsc::UnboundedSender<Answer>,
    ended: watch::Sender<Option<Ended>>,
    conversation_id: String,
    hub: Arc<Hub>,
}

/// Resolves with how a turn ended.
pub struct Waiter(watch::Receiver<Option<Ended>>);

impl Waiter {
    /// Waits for the end of the turn.
    pub async fn ended(mut self) -> Option<Ended> {
        self.0.wait_for(Option::is_some).await.ok()?.clone()
    }
}

struct Inner {
    store: Arc<Store>,
    sessions: crate::sessions::Sessions,
    settings: Arc<Shared>,
    slots: Semaphore,
    /// The permits `slots` was last sized to (settings can change the cap while running).
    cap: Mutex<usize>,
    /// One lock per conversation with turns in flight; tokio's mutex is fair, so its queue is the FIFO.
    lanes: Mutex<HashMap<String, Lane>>,
    live: Mutex<HashMap<String, Live>>,
    shutting_down: watch::Sender<bool>,
    subscribers: Arc<AtomicUsize>,
    ended: Mutex<EndedCounts>,
    /// Told when a turn ends and when Claude waits for an answer.
    push: crate::push::Push,
}

/// Upper bounds, in seconds, of the turn-duration histogram.
pub const DURATION_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Turns that ended since this process started: counters that only grow (deleting a conversation does not take
/// its turns back), for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct EndedCounts {
    /// Turns that ended, by how.
    pub by_status: std::collections::BTreeMap<TurnStatus, u64>,
    /// Turns that ran at most `DURATION_BUCKETS[i]` seconds (cumulative, as Prometheus counts them).
    pub buckets: [u64; DURATION_BUCKETS.len()],
    /// Turns whose CLI ran (the histogram's count).
    pub ran: u64,
    /// Their run time added up, in seconds (the histogram's sum).
    pub seconds: f64,
}

/// The turn manager; cheap to clone.
#[derive(Clone)]
pub struct Turns {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Turns {
    /// A manager with no turns, its cap on running turns from the settings; it tells `push` what a person away
    /// from the screen should know.
    pub fn new(store: Arc<Store>, settings: Arc<Shared>, push: crate::push::Push) -> Turns {
        let cap = settings.get().max_concurrent_turns;
        Turns {
            inner: Arc::new(Inner {
                sessions: crate::sessions::Sessions::start(settings.clone()),
                slots: Semaphore::new(cap),
                cap: Mutex::new(cap),
                store,
                settings,
                lanes: Mutex::default(),
                live: Mutex::default(),
                shutting_down: watch::Sender::new(false),
                subscribers: Arc::default(),
                ended: Mutex::default(),
                push,
            }),
        }
    }

    /// Queues a message of an existing conversation and starts its background task. A repeated `client_id`
    /// returns the first turn instead of running the agent twice (and no waiter).
    pub fn submit(&self, s: Submit) -> Result<(Turn, Option<Waiter>), SubmitError> {
        self.ready()?;
        let inner = &self.inner;
        // The place in line is taken before anything is stored, under the lock: counting the conversation's turns
        // in flight and joining is one step, so no burst gets past the cap, and the line is the order in which
        // messages were accepted.
        let place = {
            let mut lanes = lock(&inner.lanes);
            let lane = lanes.entry(s.conversation_id.clone()).or_default();
            (lane.len <= MAX_QUEUED_PER_CONVERSATION).then(|| lane.join())
        };
        let Some(place) = place else {
            // A retried send of a message already queued still gets its turn back.
            if let Some(turn) = s
                .client_id
                .as_deref()
                .and_then(|c| inner.store.turn_by_client_id(&s.conversation_id, c).ok()?)
            {
                return Ok((turn, None));
            }
            return Err(SubmitError::QueueFull);
        };
        let id = uuid::Uuid::new_v4().to_string();
        let queued = Arc::new(StreamEvent {
            seq: 1,
            kind: EventKind::Status,
            data: if s.attachments.is_empty() {
                json!({ "status": TurnStatus::Queued })
            } else {
                let attachments: Vec<_> = s.attachments.iter().map(|a| a.meta()).collect();
                json!({ "status": TurnStatus::Queued, "attachments": attachments })
            }
            .to_string(),
        });
        let turn = match inner.store.insert_turn_with(
            &id,
            &s.conversation_id,
            &s.prompt,
            s.client_id.as_deref(),
            std::slice::from_ref(&queued),
            &s.attachments,
        ) {
            Ok(turn) => turn,
            Err(e) => {
                place.pass();
                release_lane(inner, &s.conversation_id);
                if is_unique_violation(&e)
                    && let Some(turn) = s
                        .client_id
                        .as_deref()
                        .and_then(|c| inner.store.turn_by_client_id(&s.conversation_id, c).ok()?)
                {
                    return Ok((turn, None));
                }
                return Err(e.into());
            }
        };
        let (stop_tx, stop_rx) = watch::channel(None);
        let (ended_tx, ended_rx) = watch::channel(None);
        let (answers_tx, answers_rx) = tokio::sync::mpsc::unbounded_channel();
        let hub = Hub::new();
        let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
        hub.publish(&[queued]);
        lock(&inner.live).insert(
            id.clone(),
            Live {
                stop: stop_tx,
                running: running.clone(),
                answers: answers_tx,
                ended: ended_tx,
                conversation_id: s.conversation_id.clone(),
                hub: hub.clone(),
            },
        );
        let inner = inner.clone();
        tokio::spawn(async move {
            let turn = run::Handles {
                stop: stop_rx,
                hub,
                answers: answers_rx,
                running,
            };
            run::run_turn(&inner, &id, &s, place, turn).await;
            lock(&inner.live).remove(&id);
            release_lane(&inner, &s.conversation_id);
        });
        Ok((turn, Some(Waiter(ended_rx))))
    }

    /// Whether a message could run now: not shutting down, and the CLI found. Checked before anything is stored.
    pub fn ready(&self) -> Result<(), SubmitError> {
        if *self.inner.shutting_down.borrow() {
            return Err(SubmitError::ShuttingDown);
        }
        let bin = self.inner.settings.get().claude_bin.clone();
        if crate::process::find_executable(&bin).is_none() {
            return Err(SubmitError::NotFound(SpawnError::NotFound(bin)));
        }
        Ok(())
    }

    /// Waits until the turn has ended; None if it is not a live turn of this process.
    pub async fn wait(&self, turn_id: &str) -> Option<Ended> {
        let rx = lock(&self.inner.live).get(turn_id)?.ended.subscribe();
        Waiter(rx).ended().await
    }

    /// Hands the answer to a pending request (already claimed in the store) to the turn that asked, which writes
    /// `response` to its CLI as the `control_response` and tells the turn's readers. False when it did not reach
    /// the CLI: the turn is not live here any more, or the CLI withdrew the request first (the caller then ends
    /// the request, unless the turn has).
    pub async fn answer(
        &self,
        request: &crate::store::PendingRequest,
        response: serde_json::Value,
    ) -> bool {
        let (delivered, taken) = tokio::sync::oneshot::channel();
        let sent = lock(&self.inner.live)
            .get(&request.turn_id)
            .filter(|live| live.ended.borrow().is_none())
            .is_some_and(|live| {
                live.answers
                    .send((request.clone(), response, delivered))
                    .is_ok()
            });
        // The turn says once it has written the answer to the CLI; a turn that ends first drops the sender.
        sent && taken.await.unwrap_or(false)
    }

    /// Interrupts the conversation's running turn, if one runs (its queued ones wait on): the process stays warm
    /// and takes the next message.
    pub fn interrupt_running(&self, conversation_id: &str) {
        let running: Vec<String> = lock(&self.inner.live)
            .iter()
            .filter(|(_, l)| {
                l.conversation_id == conversation_id && l.running.load(Ordering::SeqCst)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in running {
            self.stop(&id, Stop::Cancel);
        }
    }

    /// Asks a live turn to stop; false if it is not running here.
    pub fn stop(&self, turn_id: &str, why: Stop) -> bool {
        match lock(&self.inner.live)
            .get(turn_id)
            .filter(|live| live.ended.borrow().is_none())
        {
            Some(live) => {
                live.stop
                    .send_if_modified(|s| s.is_none() && s.replace(why).is_none());
                true
            }
            None => false,
        }
    }

    /// Cancels every queued or running turn of a conversation and waits until they have ended.
    pub async fn cancel_conversation(&self, conversation_id: &str) {
        let ids: Vec<String> = lock(&self.inner.live)
            .iter()
            .filter(|(_, l)| l.conversation_id == conversation_id)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.stop(id, Stop::Cancel);
        }
        for id in &ids {
            self.wait(id).await;
        }
        // A reset or deleted conversation starts afresh: its warm process goes too.
        self.inner.sessions.forget(conversation_id);
    }

    /// Stops accepting turns, stops every live one through the ladder, and waits for all to end.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.send_replace(true);
        let ids: Vec<String> = lock(&self.inner.live).keys().cloned().collect();
        for id in &ids {
            self.stop(id, Stop::Shutdown);
        }
        for id in &ids {
            self.wait(id).await;
        }
        self.inner.sessions.shutdown().await;
    }

    /// Claude processes kept warm now.
    pub async fn warm(&self) -> usize {
        self.inner.sessions.warm().await
    }

    /// A reader of a turn's stream from after `after`: live from memory while the turn runs, from the store once
    /// it has ended. Counted against the caps until dropped.
    pub fn subscribe(&self, turn_id: &str, after: u64) -> Result<Subscription, SubscribeError> {
        let inner = &self.inner;
        let hub = lock(&inner.live).get(turn_id).map(|l| l.hub.clone());
        if hub.is_none() && inner.store.turn(turn_id)?.is_none() {
            return Err(SubscribeError::NotFound);
        }
        if inner.subscribers.fetch_add(1, Ordering::Relaxed) >= MAX_SUBSCRIBERS {
            inner.subscribers.fetch_sub(1, Ordering::Relaxed);
            return Err(SubscribeError::Full);
        }
        let total = inner.subscribers.clone();
        Ok(match hub {
            Some(hub) => {
                if hub.subscribers.fetch_add(1, Ordering::Relaxed) >= MAX_SUBSCRIBERS_PER_TURN {
                    hub.subscribers.fetch_sub(1, Ordering::Relaxed);
                    total.fetch_sub(1, Ordering::Relaxed);
                    return Err(SubscribeError::TurnFull);
                }
                Subscription::live(hub, inner.store.clone(), turn_id, after, total)
            }
            None => Subscription::stored(inner.store.clone(), turn_id, after, total),
        })
    }

    /// Open stream readers.
    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.load(Ordering::Relaxed)
    }

    /// Resizes the cap on running turns to the settings' (after a reload). A smaller cap takes effect as
    /// running turns end.
    pub fn apply_cap(&self) {
        let want = self.inner.settings.get().max_concurrent_turns;
        let mut cap = lock(&self.inner.cap);
        if want > *cap {
            self.inner.slots.add_permits(want - *cap);
        } else if want < *cap {
            let inner = self.inner.clone();
            let fewer = (*cap - want) as u32;
            tokio::spawn(async move {
                if let Ok(permits) = inner.slots.acquire_many(fewer).await {
                    permits.forget();
                }
            });
        }
        *cap = want;
    }

    /// What has ended since start, by status, and how long the runs took.
    pub fn ended(&self) -> EndedCounts {
        lock(&self.inner.ended).clone()
    }

    /// Turns running now and turns waiting for their conversation or a slot.
    pub fn counts(&self) -> (usize, usize) {
        let live = lock(&self.inner.live).len();
        let cap = *lock(&self.inner.cap);
        let running = cap.saturating_sub(self.inner.slots.available_permits());
        (running, live.saturating_sub(running))
    }
}

/// Counts a turn of the conversation out of its line, and drops the line once no turn of it is in flight.
fn release_lane(inner: &Inner, conversation_id: &str) {
    let mut lanes = lock(&inner.lanes);
    if let Some(lane) = lanes.get_mut(conversation_id) {
        lane.len -= 1;
        if lane.len == 0 {
            lanes.remove(conversation_id);
        }
    }
}

/// A conversation's line of turns: how many are in flight, and the signal the last one gives when it is done.
#[derive(Default)]
struct Lane {
    len: usize,
    tail: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Lane {
    /// A place at the end of the line.
    fn join(&mut self) -> Place {
        self.len += 1;
        let (done, next) = tokio::sync::oneshot::channel();
        Place {
            before: self.tail.replace(next),
            done,
        }
    }
}

/// A turn's place in its conversation's line: it runs once the turn before it is done, and the turn after it
/// runs once this place is dropped (or passed on).
pub(super) struct Place {
    before: Option<tokio::sync::oneshot::Receiver<()>>,
    done: tokio::sync::oneshot::Sender<()>,
}

impl Place {
    /// Waits until the turn before is done.
    pub(super) async fn wait(&mut self) {
        if let Some(before) = &mut self.before {
            // An error is the sender dropped: that is how a turn says it is done.
            let _ = before.await;
        }
        self.before = None;
    }

    /// Leaves the line without running: the turn after still waits for the one before this (in the background).
    pub(super) fn pass(self) {
        let Place { before, done } = self;
        if let Some(before) = before {
            tokio::spawn(async move {
                let _ = before.await;
                drop(done);
            });
        }
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}
