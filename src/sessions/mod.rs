//! The warm pool: live `claude` processes kept between turns, at most one per conversation, so that a follow-up
//! message skips the CLI's cold start. One task owns the idle processes (an actor); a turn takes its
//! conversation's process out, runs on it, and gives it back if it is still healthy. Idle processes are closed
//! after `idle_secs`, and past `max_warm` the least recently used is closed first. Closing is stdin's end (the
//! CLI exits at once), then the stop ladder for one that does not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::claude::{self, Events, Input, Run, Spec};
use crate::config::Shared;

/// How long a closed process may take to exit on its own before the ladder stops it.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A live CLI process and what we know of its state.
pub struct Live {
    /// The process.
    pub run: Run,
    /// What it prints.
    pub events: Events,
    /// Its stdin.
    pub input: Input,
    /// What it was started with, less the session it resumed: another turn may use it only if its own spec is
    /// the same (the permission mode and model are not in it: they change through control requests).
    pub spec: Spec,
    /// Its permission mode now.
    pub mode: String,
    /// Its model now (None: the CLI's default).
    pub model: Option<String>,
    /// The session it is in, once its first turn said.
    pub session_id: Option<String>,
    /// The last `total_cost_usd` it reported: the CLI counts cost since the process started, so a turn's own
    /// cost is the difference.
    pub cost_total: f64,
    /// The turns it has run.
    pub turns: u32,
}

/// How long a warm process has to confirm its mode and model before a turn.
const CONFIGURE_GRACE: Duration = Duration::from_secs(5);

/// Sets a warm process to the turn's permission mode (always: an "always" answer or an approved plan changes the
/// CLI's mode without us) and model (when the conversation changed it), and waits until the CLI has confirmed
/// each, so the message never runs in a mode the person did not choose. Err says what went wrong.
pub async fn configure(live: &mut Live, plan: &Plan) -> Result<(), String> {
    use crate::claude::{Event, control};
    let mut waiting = Vec::new();
    let (id, line) = control::request_line(control::set_permission_mode(&plan.mode));
    live.input.send(line);
    waiting.push(id);
    if live.model != plan.model {
        let (id, line) = control::request_line(control::set_model(plan.model.as_deref()));
        live.input.send(line);
        waiting.push(id);
    }
    let deadline = Instant::now() + CONFIGURE_GRACE;
    while !waiting.is_empty() {
        match tokio::time::timeout_at(deadline, live.events.recv()).await {
            Ok(Some(Event::ControlResponse {
                request_id,
                ok,
                response,
            })) => {
                if let Some(i) = waiting.iter().position(|w| *w == request_id) {
                    waiting.remove(i);
                    if !ok {
                        return Err(format!("refused the mode or model: {response}"));
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err("exited".into()),
            Err(_) => return Err("did not confirm the mode in time".into()),
        }
    }
    live.mode = plan.mode.clone();
    live.model = plan.model.clone();
    Ok(())
}

/// What a turn needs of its process: how it is started (less the mode and model, which a warm one changes
/// through control requests), the session to resume when a new one starts, the mode and the model.
pub struct Plan {
    /// How the process is started, without `--resume`, the mode or the model.
    pub spec: Spec,
    /// The session a new process resumes.
    pub resume: Option<String>,
    /// A fresh session was asked for: a warm process, which holds one already, does not do.
    pub fresh: bool,
    /// The permission mode the turn runs in.
    pub mode: String,
    /// The model the turn runs with (None: the CLI's default).
    pub model: Option<String>,
}

enum Msg {
    Take {
        conversation: String,
        reply: oneshot::Sender<Option<Live>>,
    },
    Give {
        conversation: String,
        live: Box<Live>,
    },
    Forget {
        conversation: String,
    },
    Count {
        reply: oneshot::Sender<usize>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// The handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Sessions {
    /// Starts the pool's task on the current runtime, its limits read from `settings` each time they apply.
    /// Outside a runtime (a unit test that never runs a turn) there is no pool: nothing stays warm.
    pub fn start(settings: Arc<Shared>) -> Sessions {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(pool(rx, settings));
        }
        Sessions { tx }
    }

    /// The conversation's warm process if it fits `plan`, else a new one (resuming the conversation's session).
    pub async fn acquire(
        &self,
        conversation: &str,
        plan: &Plan,
    ) -> Result<Live, claude::SpawnError> {
        if let Some(live) = self.take(conversation).await {
            let same_session =
                !plan.fresh && (plan.resume.is_none() || plan.resume == live.session_id);
            if live.spec == plan.spec && same_session {
                return Ok(live);
            }
            // Started otherwise (the settings changed, or the prototype asked for another session): a new one.
            close(live).await;
        }
        let mut spec = plan.spec.clone();
        spec.resume = plan.resume.clone();
        spec.options.push(("permission-mode", plan.mode.clone()));
        if let Some(model) = &plan.model {
            spec.options.push(("model", model.clone()));
        }
        let (run, events, input) = claude::spawn(&spec)?;
        Ok(Live {
            run,
            events,
            input,
            spec: plan.spec.clone(),
            mode: plan.mode.clone(),
            model: plan.model.clone(),
            session_id: plan.resume.clone(),
            cost_total: 0.0,
            turns: 0,
        })
    }

    /// Takes the conversation's warm process out of the pool, if it has one that is still alive.
    pub async fn take(&self, conversation: &str) -> Option<Live> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Take {
                conversation: conversation.to_string(),
                reply,
            })
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Gives a process back after a turn, to stay warm (or be closed at once when nothing may stay warm).
    pub fn give(&self, conversation: &str, live: Live) {
        let msg = Msg::Give {
            conversation: conversation.to_string(),
            live: Box::new(live),
        };
        if let Err(mpsc::error::SendError(Msg::Give { live, .. })) = self.tx.send(msg) {
            tokio::spawn(close(*live));
        }
    }

    /// Closes the conversation's warm process, if any (the conversation is deleted or reset).
    pub fn forget(&self, conversation: &str) {
        let _ = self.tx.send(Msg::Forget {
            conversation: conversation.to_string(),
        });
    }

    /// How many processes are warm now.
    pub async fn warm(&self) -> usize {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Count { reply }).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Closes every warm process and waits until they have exited; processes given back later are closed at once.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Idle {
    live: Live,
    since: Instant,
}

async fn pool(mut rx: mpsc::UnboundedReceiver<Msg>, settings: Arc<Shared>) {
    let mut idle: HashMap<String, Idle> = HashMap::new();
    let mut closing = tokio::task::JoinSet::new();
    let mut shut = false;
    loop {
        let idle_for = settings.get().session_idle;
        let next = idle.values().map(|i| i.since + idle_for).min();
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            () = sleep_until(next) => {
                let now = Instant::now();
                let expired: Vec<String> = idle
                    .iter()
                    .filter(|(_, i)| i.since + idle_for <= now)
                    .map(|(c, _)| c.clone())
                    .collect();
                for c in expired {
                    if let Some(i) = idle.remove(&c) {
                        tracing::info!(conversation = c, "closing an idle claude process");
                        closing.spawn(close(i.live));
                    }
                }
                continue;
            }
            Some(_) = closing.join_next(), if !closing.is_empty() => continue,
        };
        let Some(msg) = msg else { break };
        match msg {
            Msg::Take {
                conversation,
                reply,
            } => {
                let live = idle.remove(&conversation).and_then(|mut i| {
                    if i.live.run.exited() || i.live.events.is_closed() {
                        closing.spawn(close(i.live));
                        return None;
                    }
                    // Anything printed while idle belongs to no turn.
                    while i.live.events.try_recv().is_ok() {}
                    Some(i.live)
                });
                if let Err(Some(live)) = reply.send(live) {
                    closing.spawn(close(live));
                }
            }
            Msg::Give { conversation, live } => {
                let max = settings.get().max_warm;
                if shut || max == 0 {
                    closing.spawn(close(*live));
                    continue;
                }
                if let Some(old) = idle.insert(
                    conversation,
                    Idle {
                        live: *live,
                        since: Instant::now(),
                    },
                ) {
                    closing.spawn(close(old.live));
                }
                while idle.len() > max {
                    let Some(oldest) = idle
                        .iter()
                        .min_by_key(|(_, i)| i.since)
                        .map(|(c, _)| c.clone())
                    else {
                        break;
                    };
                    if let Some(i) = idle.remove(&oldest) {
                        tracing::info!(
                            conversation = oldest,
                            "closing the least recently used claude process"
                        );
                        closing.spawn(close(i.live));
                    }
                }
            }
            Msg::Forget { conversation } => {
                if let Some(i) = idle.remove(&conversation) {
                    closing.spawn(close(i.live));
                }
            }
            Msg::Count { reply } => {
                let _ = reply.send(idle.len());
            }
            Msg::Shutdown { reply } => {
                shut = true;
                for (_, i) in idle.drain() {
                    closing.spawn(close(i.live));
                }
                while closing.join_next().await.is_some() {}
                let _ = reply.send(());
            }
        }
    }
    for (_, i) in idle.drain() {
        closing.spawn(close(i.live));
    }
    while closing.join_next().await.is_some() {}
}

/// Closes a live process: stdin's end (an idle CLI exits at once), then the ladder if it has not exited within
/// two seconds (`EXIT_GRACE`); then whatever it left behind.
pub async fn close(live: Live) {
    let Live {
        mut run,
        input,
        mut events,
        ..
    } = live;
    let marker = run.marker().clone();
    drop(input);
    let drained = async { while events.recv().await.is_some() {} };
    let exited = tokio::time::timeout(EXIT_GRACE, async {
        drained.await;
        run.wait().await
    })
    .await;
    if exited.is_err() {
        let _ = run.stop().await;
    }
    drop(run);
    claude::kill_leftovers(&marker).await;
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
