//! The turn manager: one background task per turn, FIFO per conversation, a global cap on running turns,
//! events persisted as they arrive, and stops (cancel, timeout, shutdown) through the claude stop ladder.

mod hub;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use self::hub::Hub;
pub use self::hub::{Batch, Subscription};
use crate::claude::{self, Event, Outcome, SpawnError};
use crate::config::{Settings, Shared};
use crate::store::{Fault, Finish, Store, StreamEvent, Turn};

/// Readers of one turn's stream at once.
pub const MAX_SUBSCRIBERS_PER_TURN: usize = 256;
/// Readers of all streams at once.
pub const MAX_SUBSCRIBERS: usize = 1024;

/// Messages of one conversation waiting behind the one it runs; past this a new one is refused (429), so that a
/// client in a retry loop cannot pile up work and rows without end.
pub const MAX_QUEUED_PER_CONVERSATION: usize = 32;

/// How long the CLI may linger after printing its result before the ladder stops it.
const LINGER_AFTER_RESULT: Duration = Duration::from_secs(3);

/// Why the daemon stopped a turn; a stop it started wins over whatever the CLI printed afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Cancel,
    Timeout,
    Shutdown,
    /// The CLI printed a line longer than [`claude::MAX_LINE`].
    LineTooLong,
}

/// How a turn ended, as its waiters see it.
#[derive(Debug, Clone)]
pub struct Ended {
    pub status: &'static str,
    pub response: Option<String>,
    pub session_id: Option<String>,
    pub cost: Option<f64>,
    pub num_turns: Option<i64>,
    pub error: Option<String>,
    /// The CLI could not be started because it was not found.
    pub not_found: bool,
}

/// A message to run.
pub struct Submit {
    pub conversation_id: String,
    pub prompt: String,
    /// Resume this session instead of the conversation's own (the prototype's `session_id`).
    pub resume: Option<String>,
    pub client_id: Option<String>,
}

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("no such turn")]
    NotFound,
    #[error("too many readers of this turn (at most {MAX_SUBSCRIBERS_PER_TURN})")]
    TurnFull,
    #[error("too many open streams (at most {MAX_SUBSCRIBERS})")]
    Full,
    #[error("storage: {0}")]
    Store(#[from] rusqlite::Error),
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    NotFound(SpawnError),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(
        "too many messages waiting in this conversation (at most {MAX_QUEUED_PER_CONVERSATION}); \
         wait for them or cancel some"
    )]
    QueueFull,
    #[error("storage: {0}")]
    Store(#[from] rusqlite::Error),
}

struct Live {
    stop: watch::Sender<Option<Stop>>,
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
    settings: Arc<Shared>,
    slots: Semaphore,
    /// The permits `slots` was last sized to (settings can change the cap while running).
    cap: Mutex<usize>,
    /// One lock per conversation with turns in flight; tokio's mutex is fair, so its queue is the FIFO.
    lanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    live: Mutex<HashMap<String, Live>>,
    shutting_down: watch::Sender<bool>,
    subscribers: Arc<AtomicUsize>,
    ended: Mutex<EndedCounts>,
}

/// Upper bounds, in seconds, of the turn-duration histogram.
pub const DURATION_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Turns that ended since this process started: counters that only grow (deleting a conversation does not take
/// its turns back), for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct EndedCounts {
    pub by_status: std::collections::BTreeMap<&'static str, u64>,
    /// Turns that ran at most `DURATION_BUCKETS[i]` seconds (cumulative, as Prometheus counts them).
    pub buckets: [u64; DURATION_BUCKETS.len()],
    pub ran: u64,
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
    pub fn new(store: Arc<Store>, settings: Arc<Shared>) -> Turns {
        let cap = settings.get().max_concurrent_turns;
        Turns {
            inner: Arc::new(Inner {
                slots: Semaphore::new(cap),
                cap: Mutex::new(cap),
                store,
                settings,
                lanes: Mutex::default(),
                live: Mutex::default(),
                shutting_down: watch::Sender::new(false),
                subscribers: Arc::default(),
                ended: Mutex::default(),
            }),
        }
    }

    /// Queues a message of an existing conversation and starts its background task. A repeated `client_id`
    /// returns the first turn instead of running the agent twice (and no waiter).
    pub fn submit(&self, s: Submit) -> Result<(Turn, Option<Waiter>), SubmitError> {
        self.ready()?;
        let inner = &self.inner;
        // The lane is taken before anything is stored: its holders are the conversation's turns in flight, so
        // counting them and joining is one step under the lock, and no burst gets past the cap.
        let lane = {
            let mut lanes = lock(&inner.lanes);
            let lane = lanes.entry(s.conversation_id.clone()).or_default();
            (Arc::strong_count(lane) <= MAX_QUEUED_PER_CONVERSATION + 1).then(|| lane.clone())
        };
        let Some(lane) = lane else {
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
            kind: "status".into(),
            data: json!({ "status": "queued" }).to_string(),
        });
        let turn = match inner.store.insert_turn(
            &id,
            &s.conversation_id,
            &s.prompt,
            s.client_id.as_deref(),
            std::slice::from_ref(&queued),
        ) {
            Ok(turn) => turn,
            Err(e) => {
                drop(lane);
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
        let hub = Hub::new();
        hub.publish(&[queued]);
        lock(&inner.live).insert(
            id.clone(),
            Live {
                stop: stop_tx,
                ended: ended_tx,
                conversation_id: s.conversation_id.clone(),
                hub: hub.clone(),
            },
        );
        let inner = inner.clone();
        tokio::spawn(async move {
            run_turn(&inner, &id, &s, lane, stop_rx, hub).await;
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

    /// Turns running now and turns waiting for their conversation or a slot.
    /// What has ended since start, by status, and how long the runs took.
    pub fn ended(&self) -> EndedCounts {
        lock(&self.inner.ended).clone()
    }

    pub fn counts(&self) -> (usize, usize) {
        let live = lock(&self.inner.live).len();
        let cap = *lock(&self.inner.cap);
        let running = cap.saturating_sub(self.inner.slots.available_permits());
        (running, live.saturating_sub(running))
    }
}

/// Drops a conversation's lane once no turn of it holds or waits for it (call after dropping one's own clone).
fn release_lane(inner: &Inner, conversation_id: &str) {
    let mut lanes = lock(&inner.lanes);
    if lanes
        .get(conversation_id)
        .is_some_and(|l| Arc::strong_count(l) == 1)
    {
        lanes.remove(conversation_id);
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// A turn's events, numbered on from the `queued` status (1), held until the next flush so that what arrives
/// together is stored in one transaction; readers see them once stored.
struct Stream<'a> {
    store: &'a Store,
    hub: Arc<Hub>,
    turn_id: &'a str,
    seq: u64,
    pending: Vec<Arc<StreamEvent>>,
    /// Why storing failed, once it has: the turn then stops and ends `failed` with this.
    fault: Option<String>,
}

impl Stream<'_> {
    fn emit(&mut self, kind: &'static str, data: Value) {
        self.seq += 1;
        self.pending.push(Arc::new(StreamEvent {
            seq: self.seq,
            kind: kind.into(),
            data: data.to_string(),
        }));
    }

    /// Stores the pending events with `write` (one transaction), then shows them to readers. Events that could
    /// not be stored are shown to nobody, and numbering goes on from the last stored one, so the stream stays
    /// the same live and replayed. True if they were stored.
    fn flush_with(
        &mut self,
        write: impl FnOnce(&[Arc<StreamEvent>]) -> rusqlite::Result<()>,
    ) -> bool {
        let stored = match write(&self.pending) {
            Ok(()) => {
                self.hub.publish(&self.pending);
                true
            }
            Err(e) => {
                tracing::error!(turn = self.turn_id, "could not store events: {e}");
                if let Some(first) = self.pending.first() {
                    self.seq = first.seq - 1;
                }
                self.failed(&e);
                false
            }
        };
        self.pending.clear();
        stored
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let (store, turn_id) = (self.store, self.turn_id);
            self.flush_with(|events| store.append_events(turn_id, events));
        }
    }

    /// Records the first storage failure of the turn, in the words the API gives it (docs/api.md).
    fn failed(&mut self, e: &rusqlite::Error) {
        self.fault.get_or_insert_with(|| match Fault::of(e) {
            Some(f) => f.message().to_string(),
            None => format!("could not store the turn: {e}"),
        });
    }
}

async fn run_turn(
    inner: &Inner,
    turn_id: &str,
    s: &Submit,
    lane: Arc<tokio::sync::Mutex<()>>,
    stop: watch::Receiver<Option<Stop>>,
    hub: Arc<Hub>,
) {
    let mut stream = Stream {
        store: &inner.store,
        hub,
        turn_id,
        seq: 1,
        pending: Vec::new(),
        fault: None,
    };
    // Queued: wait for the conversation, then for a slot; a stop meanwhile just drops the turn.
    let queued = async {
        let lane = lane.lock_owned().await;
        let slot = inner.slots.acquire().await.expect("never closed");
        (lane, slot)
    };
    let (_lane, _slot) = tokio::select! {
        held = queued => held,
        why = stopped(stop.clone()) => {
            return finish(inner, &mut stream, stopped_ending(why, None, inner.settings.get().turn_timeout), None).await;
        }
    };
    stream.emit("status", json!({ "status": "running" }));

    let spec = match spec_for(inner, turn_id, s) {
        Ok(spec) => spec,
        Err(e) => return finish(inner, &mut stream, failed(e), None).await,
    };
    let started = Instant::now();
    let (mut run, mut events) = match claude::spawn(&spec) {
        Ok(spawned) => spawned,
        Err(e) => {
            let mut ended = failed(e.to_string());
            ended.not_found = matches!(e, SpawnError::NotFound(_));
            return finish(inner, &mut stream, ended, None).await;
        }
    };
    let pid = run.pid();
    let pid_start = claude::process_start(pid);
    stream.flush_with(|events| {
        inner
            .store
            .start_turn(turn_id, Some(pid), pid_start, events)
    });
    tracing::info!(
        turn = turn_id,
        conversation = s.conversation_id,
        pid,
        "turn started"
    );

    let timeout = inner.settings.get().turn_timeout;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut outcome: Option<Outcome> = None;
    let mut why: Option<Stop> = None;
    let mut linger = None;
    let mut open = true;
    let mut result_seen = false;
    // Read until the result line, stdout closes and the process exits, a stop is asked for, or the CLI lingers.
    let mut exited = loop {
        tokio::select! {
            event = events.recv(), if open => match event {
                Some(event) => {
                    on_event(&mut stream, &mut outcome, &mut linger, event);
                    // Store what has arrived together in one transaction.
                    while let Ok(event) = events.try_recv() {
                        on_event(&mut stream, &mut outcome, &mut linger, event);
                    }
                    if outcome.is_some() {
                        result_seen = true;
                        break None;
                    }
                    stream.flush();
                }
                None if run.line_too_long() => { why = Some(Stop::LineTooLong); break None; }
                None => {
                    // Stdout closed: the process should exit now; give it the same grace as after a result.
                    open = false;
                    linger.get_or_insert_with(|| tokio::time::Instant::now() + LINGER_AFTER_RESULT);
                }
            },
            status = run.wait(), if !open => break status.ok(),
            w = stopped(stop.clone()) => { why = Some(w); break None; }
            () = &mut deadline => { why = Some(Stop::Timeout); break None; }
            () = sleep_until(linger), if linger.is_some() => break None,
            // Once the turn's events cannot be stored it stops, and ends failed.
            () = std::future::ready(()), if stream.fault.is_some() => break None,
        }
    };
    let ending = |why: Option<Stop>,
                  outcome: Option<&Outcome>,
                  exited: Option<std::process::ExitStatus>,
                  run: &claude::Run| {
        let ended = match why {
            Some(w) => stopped_ending(w, outcome, timeout),
            None => match outcome {
                Some(o) if o.succeeded() => Ended {
                    status: "succeeded",
                    response: o.text.clone(),
                    session_id: o.session_id.clone(),
                    cost: o.cost,
                    num_turns: o.num_turns,
                    error: None,
                    not_found: false,
                },
                Some(o) => Ended {
                    status: "failed",
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
        };
        let keep = outcome
            .filter(|o| o.succeeded())
            .and(ended.session_id.clone());
        (ended, keep)
    };
    if result_seen {
        // The result line ends the turn for its readers at once (design.md): the CLI often lingers seconds after
        // it, and nobody should wait for that. The process still gets its linger time to exit; what it prints
        // meanwhile is read (a full pipe would block it) and dropped.
        let (ended, keep) = ending(None, outcome.as_ref(), None, &run);
        finish(inner, &mut stream, ended, Some((started.elapsed(), keep))).await;
        exited = loop {
            tokio::select! {
                event = recv_or_pending(&mut events, open) => if event.is_none() { open = false },
                status = run.wait(), if !open => break status.ok(),
                () = sleep_until(linger) => break None,
            }
        };
    }
    if exited.is_none() {
        // Keep reading while the ladder runs: the CLI prints its last lines (often a result) as it stops.
        {
            let ladder = run.stop();
            tokio::pin!(ladder);
            loop {
                tokio::select! {
                    _ = &mut ladder => break,
                    event = recv_or_pending(&mut events, open) => match event {
                        Some(event) if !result_seen => on_event(&mut stream, &mut outcome, &mut linger, event),
                        Some(_) => {}
                        None => open = false,
                    },
                }
            }
        }
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), events.recv()).await
        {
            if !result_seen {
                on_event(&mut stream, &mut outcome, &mut linger, event);
            }
        }
    }
    if !result_seen {
        let (ended, keep) = ending(why, outcome.as_ref(), exited, &run);
        finish(inner, &mut stream, ended, Some((started.elapsed(), keep))).await;
    }
    drop(run);
    // Waiters already have their answer; the conversation's next turn waits for this clean-up.
    let left = claude::kill_leftovers(turn_id).await;
    if left > 0 {
        tracing::info!(
            turn = turn_id,
            "stopped {left} process(es) the turn left behind"
        );
    }
}

fn on_event(
    stream: &mut Stream,
    outcome: &mut Option<Outcome>,
    linger: &mut Option<tokio::time::Instant>,
    event: Event,
) {
    if stream.fault.is_some() {
        // Nothing more is stored, so nothing more is shown; the outcome no longer matters either.
        return;
    }
    if let Some((kind, data)) = event.to_stream() {
        stream.emit(kind, data);
    }
    match event {
        Event::Init {
            session_id: Some(id),
            ..
        } => {
            if let Err(e) = stream.store.set_session(stream.turn_id, &id) {
                tracing::error!(turn = stream.turn_id, "could not store the session: {e}");
                stream.failed(&e);
            }
        }
        Event::Result(o) => {
            *outcome = Some(o);
            linger.get_or_insert_with(|| tokio::time::Instant::now() + LINGER_AFTER_RESULT);
        }
        Event::Garbage(line) => tracing::debug!(turn = stream.turn_id, "claude printed: {line}"),
        _ => {}
    }
}

/// Resolves with the stop reason once one is asked for.
async fn stopped(mut rx: watch::Receiver<Option<Stop>>) -> Stop {
    let why = rx.wait_for(Option::is_some).await.ok().and_then(|why| *why);
    match why {
        Some(why) => why,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv_or_pending(
    events: &mut tokio::sync::mpsc::Receiver<Event>,
    open: bool,
) -> Option<Event> {
    if open {
        events.recv().await
    } else {
        std::future::pending().await
    }
}

fn failed(error: String) -> Ended {
    Ended {
        status: "failed",
        response: None,
        session_id: None,
        cost: None,
        num_turns: None,
        error: Some(error),
        not_found: false,
    }
}

/// A stop we asked for decides the status; a successful result printed meanwhile still gives its session.
fn stopped_ending(why: Stop, outcome: Option<&Outcome>, timeout: Duration) -> Ended {
    let (status, error) = match why {
        Stop::Cancel => ("cancelled", "cancelled".to_string()),
        Stop::Timeout => (
            "timed_out",
            format!("timed out after {} s (the turn timeout)", timeout.as_secs()),
        ),
        Stop::Shutdown => (
            "interrupted",
            "the server stopped while this turn ran".into(),
        ),
        Stop::LineTooLong => (
            "failed",
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

/// Stores the ending, emits the closing events and tells the waiters. `run` is (elapsed, session to keep) when
/// the CLI ran. When storing fails the turn ends `failed` with the reason instead, and that end is retried until
/// it is stored (the disk may fill up and free again): readers and waiters only ever learn a stored end, and the
/// conversation's next turn waits for it.
async fn finish(
    inner: &Inner,
    stream: &mut Stream<'_>,
    mut ended: Ended,
    run: Option<(Duration, Option<String>)>,
) {
    let (duration_ms, mut keep) = match run {
        Some((elapsed, keep)) => (Some(elapsed.as_millis() as i64), keep),
        None => (None, None),
    };
    let mut delay = Duration::from_millis(50);
    loop {
        if let Some(fault) = &stream.fault {
            ended = failed(fault.clone());
            keep = None;
        }
        if let Some(error) = &ended.error {
            let mut data = json!({ "error": error });
            if let Some(kind) = claude::error_kind(error) {
                data["kind"] = json!(kind);
            }
            stream.emit("error", data);
        }
        stream.emit("done", json!({ "status": ended.status }));
        let record = Finish {
            status: ended.status,
            response: ended.response.clone(),
            session_id: ended.session_id.clone(),
            cost: ended.cost,
            num_turns: ended.num_turns,
            duration_ms,
            error: ended.error.clone(),
            keep_session: keep.is_some(),
        };
        let turn_id = stream.turn_id;
        if stream.flush_with(|events| inner.store.finish_turn(turn_id, &record, events)) {
            break;
        }
        if *inner.shutting_down.borrow() && delay >= Duration::from_secs(2) {
            // Shutting down and still nothing lands: the next start marks the turn interrupted.
            tracing::error!(turn = turn_id, "giving up storing the end of the turn");
            break;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    {
        let mut counts = lock(&inner.ended);
        *counts.by_status.entry(ended.status).or_default() += 1;
        if let Some(ms) = duration_ms {
            let secs = ms as f64 / 1000.0;
            counts.ran += 1;
            counts.seconds += secs;
            for (n, le) in counts.buckets.iter_mut().zip(DURATION_BUCKETS) {
                *n += u64::from(secs <= le);
            }
        }
    }
    tracing::info!(turn = stream.turn_id, status = ended.status, "turn ended");
    if let Some(live) = lock(&inner.live).get(stream.turn_id) {
        live.ended.send_replace(Some(ended));
    }
}

/// The CLI invocation for a turn, read once the conversation is free (so it resumes the session the previous
/// turn left).
///
/// The conversation's project must still be an allowed one (the list can change, and a conversation can come from an
/// import): Claude never runs anywhere else.
fn spec_for(inner: &Inner, turn_id: &str, s: &Submit) -> Result<claude::Spec, String> {
    let conv = inner
        .store
        .conversation_settings(&s.conversation_id)
        .map_err(|e| format!("storage: {e}"))?
        .ok_or("the conversation is gone")?;
    let settings: Arc<Settings> = inner.settings.get();
    let allowed = std::path::Path::new(&conv.project)
        .canonicalize()
        .is_ok_and(|p| settings.projects.contains(&p));
    if !allowed {
        return Err(format!(
            "the conversation's project {} is not an allowed project directory (allowed: {}); start a new \
             conversation, or add it to [projects] allow",
            conv.project,
            settings
                .projects
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // A stored mode is checked again: the settings may have lowered the ceiling since it was chosen.
    if let Some(refused) = conv
        .permission_mode
        .as_deref()
        .and_then(|m| settings.refuse_mode(m))
    {
        return Err(format!(
            "{refused}; change the conversation's permission_mode"
        ));
    }
    let mut options: Vec<(&'static str, String)> = vec![(
        "permission-mode",
        conv.permission_mode
            .clone()
            .unwrap_or_else(|| settings.permission_mode.clone()),
    )];
    for rule in &settings.allowed_tools {
        options.push(("allowedTools", rule.clone()));
    }
    if let Some(model) = &conv.model {
        options.push(("model", model.clone()));
    }
    if let Some(budget) = conv.max_budget_usd {
        options.push(("max-budget-usd", budget.to_string()));
    }
    Ok(claude::Spec {
        bin: settings.claude_bin.clone(),
        cwd: PathBuf::from(&conv.project),
        prompt: s.prompt.clone(),
        resume: s.resume.clone().or(conv.session_id),
        options,
        turn_id: turn_id.to_string(),
    })
}
