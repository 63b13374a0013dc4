//! Running one turn: waiting for its conversation and a slot, starting the CLI, turning what it prints into the
//! turn's stored and published events, stopping it (cancel, timeout, shutdown, a line too long) through the
//! ladder, and storing how it ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::ask::{Answer, Asks};
use super::end::{ending, failed, stopped_ending};
use super::hub::Hub;
use super::plan::plan_for;
use super::tell;
use super::{DURATION_BUCKETS, Ended, Inner, Stop, Submit, lock};
use crate::claude::{self, Event, Outcome, SpawnError, control};
use crate::sessions::{self, Live};
use crate::store::{EventKind, Fault, Finish, Store, StreamEvent, TurnStatus};

/// How long the CLI has to end a turn after our `interrupt` before the ladder stops the process.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// A turn's events, numbered on from the `queued` status (1), held until the next flush so that what arrives
/// together is stored in one transaction; readers see them once stored.
pub(super) struct Stream<'a> {
    pub(super) store: &'a Store,
    hub: Arc<Hub>,
    pub(super) turn_id: &'a str,
    pub(super) conversation_id: &'a str,
    seq: u64,
    pending: Vec<Arc<StreamEvent>>,
    /// Why storing failed, once it has: the turn then stops and ends `failed` with this.
    pub(super) fault: Option<String>,
    /// Told that the turn ended, and of each request.
    pub(super) push: &'a crate::push::Push,
    /// The turn left the queue and ran (a turn withdrawn from the queue before it ran is no news to anyone).
    started: bool,
}

impl Stream<'_> {
    pub(super) fn emit(&mut self, kind: EventKind, data: Value) {
        self.seq += 1;
        self.pending.push(Arc::new(StreamEvent {
            seq: self.seq,
            kind,
            data: data.to_string(),
        }));
    }

    /// Stores the pending events with `write` (one transaction), then shows them to readers. Events that could
    /// not be stored are shown to nobody, and numbering goes on from the last stored one, so the stream stays
    /// the same live and replayed. True if they were stored.
    pub(super) fn flush_with(
        &mut self,
        write: impl FnOnce(&[Arc<StreamEvent>]) -> rusqlite::Result<()>,
    ) -> bool {
        self.flush_if(|events| write(events).map(|()| true))
    }

    /// Like [`Stream::flush_with`], for a write that may decline to store the events (it returns false): they are
    /// then shown to nobody, and numbering goes on from before them.
    pub(super) fn flush_if(
        &mut self,
        write: impl FnOnce(&[Arc<StreamEvent>]) -> rusqlite::Result<bool>,
    ) -> bool {
        let stored = match write(&self.pending) {
            Ok(true) => {
                self.hub.publish(&self.pending);
                true
            }
            Ok(false) => {
                if let Some(first) = self.pending.first() {
                    self.seq = first.seq - 1;
                }
                false
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

    pub(super) fn flush(&mut self) {
        if !self.pending.is_empty() {
            let (store, turn_id) = (self.store, self.turn_id);
            self.flush_with(|events| store.append_events(turn_id, events));
        }
    }

    /// Records the first storage failure of the turn, in the words the API gives it (docs/api.md).
    pub(super) fn failed(&mut self, e: &rusqlite::Error) {
        self.fault.get_or_insert_with(|| match Fault::of(e) {
            Some(f) => f.message().to_string(),
            None => format!("could not store the turn: {e}"),
        });
    }
}

/// What a turn's task is handed besides the message: the stop signal, its stream's readers, the answers to its
/// requests, and the flag that says it runs.
pub(super) struct Handles {
    pub(super) stop: watch::Receiver<Option<Stop>>,
    pub(super) hub: Arc<Hub>,
    pub(super) answers: mpsc::UnboundedReceiver<Answer>,
    pub(super) running: Arc<std::sync::atomic::AtomicBool>,
}

pub(super) async fn run_turn(
    inner: &Inner,
    turn_id: &str,
    s: &Submit,
    mut place: super::Place,
    handles: Handles,
) {
    let Handles {
        stop,
        hub,
        mut answers,
        running,
    } = handles;
    let mut stream = Stream {
        store: &inner.store,
        hub,
        turn_id,
        conversation_id: &s.conversation_id,
        seq: 1,
        pending: Vec::new(),
        fault: None,
        push: &inner.push,
        started: false,
    };
    // Queued: wait for the conversation's turns before this one, then for a slot; a stop meanwhile drops the
    // turn, and the one after it waits for those before instead. The place is held to the end of the turn.
    let queued = async {
        place.wait().await;
        inner.slots.acquire().await.expect("never closed")
    };
    let waited = tokio::select! {
        slot = queued => Ok(slot),
        why = stopped(stop.clone()) => Err(why),
    };
    let _slot = match waited {
        Ok(slot) => slot,
        Err(why) => {
            place.pass();
            return finish(
                inner,
                &mut stream,
                stopped_ending(why, None, inner.settings.get().turn_timeout),
                None,
            )
            .await;
        }
    };
    running.store(true, std::sync::atomic::Ordering::SeqCst);
    stream.started = true;
    stream.emit(EventKind::Status, json!({ "status": TurnStatus::Running }));

    let plan = match plan_for(inner, s) {
        Ok(plan) => plan,
        Err(e) => return finish(inner, &mut stream, failed(e), None).await,
    };
    let started = Instant::now();
    // The project's state before the turn, recorded while the process is found or started (it reads nothing
    // before the message is sent).
    let data_dir = inner.settings.get().data_dir.clone();
    let begin = crate::changes::begin(&inner.store, &data_dir, turn_id, &plan.spec.cwd);
    let (begun, live) = tokio::join!(begin, acquire(inner, turn_id, s, &plan));
    let mut live = match live {
        Ok(live) => live,
        Err(e) => {
            let mut ended = failed(e.to_string());
            ended.not_found = matches!(e, SpawnError::NotFound(_));
            finish(inner, &mut stream, ended, None).await;
            return crate::changes::end(&inner.store, &data_dir, begun).await;
        }
    };
    let pid = live.run.pid();
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
    live.input
        .send(control::user_line_with(&s.prompt, &s.attached()));

    let timeout = inner.settings.get().turn_timeout;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut asks = Asks::in_project(plan.spec.cwd.clone());
    let deny_after = inner.settings.get().deny_unanswered_after;
    let mut outcome: Option<Outcome> = None;
    let mut why: Option<Stop> = None;
    // Set once we have asked the CLI to interrupt the turn: past it, the ladder.
    let mut interrupt_by: Option<tokio::time::Instant> = None;
    let mut open = true;
    // Read until the result line, stdout closes, a stop is asked for, or an interrupt goes unanswered.
    loop {
        tokio::select! {
            event = live.events.recv() => match event {
                Some(event) => {
                    let mut next = Some(event);
                    // Store what has arrived together in one transaction.
                    while let Some(event) = next.take().or_else(|| live.events.try_recv().ok()) {
                        on_event(&mut stream, Parts::of(&mut live), &mut asks, &mut outcome, event);
                        if outcome.is_some() {
                            break;
                        }
                    }
                    if outcome.is_some() {
                        break;
                    }
                    stream.flush();
                }
                None => {
                    if live.run.line_too_long() {
                        why.get_or_insert(Stop::LineTooLong);
                    }
                    open = false;
                    break;
                }
            },
            Some((request, response, delivered)) = answers.recv() => {
                let taken = asks.is_waiting(&request.cli_request_id);
                let stops = asks.answer(&mut stream, &live.input, &request, &response);
                let _ = delivered.send(taken);
                // "Deny and stop" ends the turn as a stop of ours would: cancelled, the process kept.
                if stops && why.is_none() {
                    why = Some(Stop::Cancel);
                    interrupt_by = Some(tokio::time::Instant::now() + INTERRUPT_GRACE);
                }
            }
            w = stopped(stop.clone()), if why.is_none() => {
                why = Some(w);
                match w {
                    // Only the turn stops: the process stays warm for the next message.
                    Stop::Cancel | Stop::Timeout => interrupt_by = Some(interrupt(&live)),
                    // The process goes: what it asked expires now (as the CLI stops it may withdraw it too, and
                    // the request should not end one way or the other by a race).
                    Stop::Shutdown | Stop::LineTooLong => {
                        asks.expire_all(&mut stream);
                        break;
                    }
                }
            }
            () = &mut deadline, if why.is_none() => {
                why = Some(Stop::Timeout);
                interrupt_by = Some(interrupt(&live));
            }
            () = sleep_until(asks.next_deadline(deny_after)), if deny_after.is_some() => {
                asks.deny_overdue(&mut stream, &live.input, deny_after.unwrap_or_default());
            }
            () = sleep_until(interrupt_by), if interrupt_by.is_some() => break,
            // Once the turn's events cannot be stored it stops, and ends failed.
            () = std::future::ready(()), if stream.fault.is_some() => break,
        }
    }
    let result_seen = outcome.is_some();
    // The process can take the next message if it ended this turn the way the protocol says, and nothing else
    // has gone wrong with it.
    let healthy = result_seen
        && open
        && stream.fault.is_none()
        && !matches!(why, Some(Stop::Shutdown | Stop::LineTooLong))
        && !live.run.exited();
    let mut exited = None;
    if !healthy {
        // Keep reading while the ladder runs: the CLI prints its last lines (often a result) as it stops.
        // They are the turn's (the interrupted tool's result, the CLI's own interrupt result), so they are
        // stored and shown like the ones before; once a result is in, the rest belongs to no turn.
        {
            let Live {
                run,
                events,
                input,
                cost_total,
                session_id,
                ..
            } = &mut live;
            let ladder = run.stop();
            tokio::pin!(ladder);
            loop {
                tokio::select! {
                    status = &mut ladder => { exited = status.ok(); break }
                    event = recv_or_pending(events, open) => match event {
                        Some(event) if outcome.is_none() => {
                            let parts = Parts { input, cost_total, session_id };
                            on_event(&mut stream, parts, &mut asks, &mut outcome, event);
                        }
                        Some(_) => {}
                        None => open = false,
                    },
                }
            }
        }
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(200), live.events.recv()).await
        {
            if outcome.is_none() {
                on_event(
                    &mut stream,
                    Parts::of(&mut live),
                    &mut asks,
                    &mut outcome,
                    event,
                );
            }
        }
    }
    asks.expire_all(&mut stream);
    if healthy && matches!(why, Some(Stop::Cancel | Stop::Timeout)) {
        let left = claude::kill_outside_group(live.run.marker(), pid);
        if left > 0 {
            tracing::info!(
                turn = turn_id,
                "stopped {left} process(es) the interrupted turn left running"
            );
        }
    }
    let ended = ending(why, outcome.as_ref(), exited, &live.run, timeout);
    let keep = outcome
        .as_ref()
        .filter(|o| o.succeeded())
        .and(ended.session_id.clone());
    if let Some(id) = &ended.session_id {
        live.session_id = Some(id.clone());
    }
    // Back to the pool before the waiters learn the end: one that then deletes or resets the conversation
    // (`forget`) must find the process there, or it would stay warm for a conversation that is gone.
    let marker = live.run.marker().clone();
    if healthy {
        live.turns += 1;
        inner.sessions.give(&s.conversation_id, live);
    } else {
        drop(live);
    }
    finish(inner, &mut stream, ended, Some((started.elapsed(), keep))).await;
    // The project's state after it: the readers have their end already; its change set is `pending` until now.
    crate::changes::end(&inner.store, &data_dir, begun).await;
    // Waiters already have their answer; the conversation's next turn waits for what follows.
    let left = claude::kill_leftovers(&marker).await;
    if left > 0 {
        tracing::info!(
            turn = turn_id,
            "stopped {left} process(es) the turn left behind"
        );
    }
}

/// The conversation's live process for the turn, set to its mode and model.
async fn acquire(
    inner: &Inner,
    turn_id: &str,
    s: &Submit,
    plan: &sessions::Plan,
) -> Result<Live, SpawnError> {
    match inner.sessions.acquire(&s.conversation_id, plan).await {
        Ok(live) if live.turns == 0 => Ok(live),
        // A warm process is set to the turn's mode and model first. A process that refuses is replaced by a new
        // one started with them (which then says what is wrong, if anything is).
        Ok(mut live) => match sessions::configure(&mut live, plan).await {
            Ok(()) => Ok(live),
            Err(e) => {
                tracing::warn!(
                    turn = turn_id,
                    "a warm claude process {e}; starting a new one"
                );
                sessions::close(live).await;
                inner.sessions.acquire(&s.conversation_id, plan).await
            }
        },
        Err(e) => Err(e),
    }
}

/// What [`on_event`] needs of the turn's process (not its `run`, which the ladder may hold meanwhile).
struct Parts<'a> {
    input: &'a claude::Input,
    cost_total: &'a mut f64,
    session_id: &'a mut Option<String>,
}

impl<'a> Parts<'a> {
    fn of(live: &'a mut Live) -> Parts<'a> {
        Parts {
            input: &live.input,
            cost_total: &mut live.cost_total,
            session_id: &mut live.session_id,
        }
    }
}

fn on_event(
    stream: &mut Stream,
    live: Parts,
    asks: &mut Asks,
    outcome: &mut Option<Outcome>,
    mut event: Event,
) {
    if stream.fault.is_some() {
        // Nothing more is stored, so nothing more is shown; the outcome no longer matters either.
        return;
    }
    if let Event::Result(o) = &mut event {
        // The CLI counts cost since the process started: this turn's is the difference.
        if let Some(total) = o.cost {
            // Rounded to a billionth of a cent: the difference of two sums in binary floating point is otherwise
            // shown as 0.0021000000000000003.
            let own = ((total - *live.cost_total).max(0.0) * 1e11).round() / 1e11;
            o.cost = Some(own);
            *live.cost_total = total;
        }
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
            *live.session_id = Some(id);
        }
        Event::Result(o) => *outcome = Some(o),
        Event::ControlRequest {
            request_id,
            request,
        } => asks.asked(stream, live.input, &request_id, &request),
        Event::ControlCancel { request_id } => asks.withdrawn(stream, &request_id),
        Event::ControlResponse {
            request_id,
            ok: false,
            response,
        } => tracing::warn!(
            turn = stream.turn_id,
            request_id,
            "claude refused a control request: {response}"
        ),
        Event::Garbage(line) => tracing::debug!(turn = stream.turn_id, "claude printed: {line}"),
        _ => {}
    }
}

/// Asks the CLI to interrupt its turn; returns when the ladder takes over if it has not ended the turn. A stopped
/// process (SIGSTOP, a debugger) reads nothing until continued, so waiting for its answer would only add
/// [`INTERRUPT_GRACE`] to a cancel: the ladder at once (it continues the process along with each signal).
fn interrupt(live: &Live) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    if claude::is_stopped(live.run.pid()) {
        return now;
    }
    live.input
        .send(control::request_line(control::interrupt()).1);
    now + INTERRUPT_GRACE
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
            stream.emit(EventKind::Error, data);
        }
        stream.emit(EventKind::Done, json!({ "status": ended.status }));
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
    tracing::info!(
        turn = stream.turn_id,
        status = ended.status.as_str(),
        "turn ended"
    );
    // No notification for a turn cancelled while queued: it never ran, and the one who cancelled it knows.
    let told = stream.started.then(|| tell::ending(&ended)).flatten();
    if let Some(live) = lock(&inner.live).get(stream.turn_id) {
        live.ended.send_replace(Some(ended));
    }
    if let Some(told) = told {
        tell::turn_ended(stream, told);
    }
}
