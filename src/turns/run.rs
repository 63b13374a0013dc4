//! Running one turn: waiting for its conversation and a slot, starting the CLI, turning what it prints into the
//! turn's stored and published events, stopping it (cancel, timeout, shutdown, a line too long) through the
//! ladder, and storing how it ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::hub::Hub;
use super::{DURATION_BUCKETS, Ended, Inner, Stop, Submit, lock};
use crate::claude::{self, Event, Outcome, SpawnError};
use crate::config::Settings;
use crate::store::{EventKind, Fault, Finish, Store, StreamEvent, TurnStatus};

/// How long the CLI may linger after printing its result before the ladder stops it.
const LINGER_AFTER_RESULT: Duration = Duration::from_secs(3);

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
    fn emit(&mut self, kind: EventKind, data: Value) {
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

pub(super) async fn run_turn(
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
    stream.emit(EventKind::Status, json!({ "status": TurnStatus::Running }));

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
        };
        let keep = outcome
            .filter(|o| o.succeeded())
            .and(ended.session_id.clone());
        (ended, keep)
    };
    if result_seen {
        // The result line ends the turn for its readers at once (docs/architecture.md, "A message, end to end"):
        // the CLI often lingers seconds after it, and nobody should wait for that. The process still gets its
        // linger time to exit; what it prints meanwhile is read (a full pipe would block it) and dropped.
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
fn stopped_ending(why: Stop, outcome: Option<&Outcome>, timeout: Duration) -> Ended {
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
