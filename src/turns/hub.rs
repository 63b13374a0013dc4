//! A turn's event stream for its readers: the stored events of a live turn in a bounded ring in memory, a watch
//! that wakes subscribers, and reads from any point (older events come back from the store), so a replay is
//! always exactly the live stream.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{EventKind, Store, StreamEvent};

/// Events of a live turn kept in memory; older ones are read back from the store.
const RING: usize = 1024;

/// The most events one read returns.
pub const MAX_BATCH: usize = 512;

/// The stream of one live turn. Only stored events are published, so the ring and the store never disagree.
pub struct Hub {
    state: Mutex<State>,
    latest: watch::Sender<u64>,
    /// Subscribers of this turn, for the per-turn cap.
    pub subscribers: AtomicUsize,
}

#[derive(Default)]
struct State {
    ring: VecDeque<Arc<StreamEvent>>,
    /// The sequence number of the `done` event, once published.
    done: Option<u64>,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::default(),
            latest: watch::Sender::new(0),
            subscribers: AtomicUsize::new(0),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes stored events visible to subscribers and wakes them.
    pub fn publish(&self, events: &[Arc<StreamEvent>]) {
        let Some(last) = events.last() else {
            return;
        };
        let mut state = self.state();
        for e in events {
            if e.kind == EventKind::Done {
                state.done = Some(e.seq);
            }
            state.ring.push_back(e.clone());
        }
        let excess = state.ring.len().saturating_sub(RING);
        state.ring.drain(..excess);
        drop(state);
        self.latest.send_replace(last.seq);
    }

    /// The events after `after` (at most [`MAX_BATCH`]) and whether they reach the end of the stream.
    fn read(&self, store: &Store, turn_id: &str, after: u64) -> (Vec<Arc<StreamEvent>>, bool) {
        let (events, front, done) = {
            let state = self.state();
            let front = state.ring.front().map(|e| e.seq);
            let skip = front.map_or(0, |f| after.saturating_sub(f - 1) as usize);
            let events: Vec<_> = state
                .ring
                .iter()
                .skip(skip)
                .take(MAX_BATCH)
                .cloned()
                .collect();
            (events, front, state.done)
        };
        // Older than the ring holds: read those from the store first (without holding the ring's lock).
        if let Some(front) = front
            && after + 1 < front
        {
            let n = ((front - 1 - after) as usize).min(MAX_BATCH);
            let old = store
                .events(turn_id, after, n)
                .unwrap_or_else(|e| {
                    tracing::error!(turn = turn_id, "could not read events: {e}");
                    Vec::new()
                })
                .into_iter()
                .map(Arc::new)
                .collect();
            return (old, false);
        }
        let last = events.last().map_or(after, |e| e.seq);
        (events, done.is_some_and(|d| last >= d))
    }
}

/// Where a subscriber reads from: a live turn's hub, or only the store for a turn that has ended.
enum Source {
    Live {
        hub: Arc<Hub>,
        latest: watch::Receiver<u64>,
    },
    Stored,
}

/// One reader of a turn's stream, with a cursor; counted against the caps until dropped.
pub struct Subscription {
    source: Source,
    store: Arc<Store>,
    turn_id: String,
    after: u64,
    total: Arc<AtomicUsize>,
}

/// What one read gave: events after the cursor (possibly none if nothing came in time), and whether the stream
/// has ended with them.
pub struct Batch {
    /// The events, in order.
    pub events: Vec<Arc<StreamEvent>>,
    /// The last of them is the turn's `done` (or there is nothing more to read).
    pub finished: bool,
}

impl Subscription {
    /// A subscription to a live turn; the caller has checked and counted the caps.
    pub(super) fn live(
        hub: Arc<Hub>,
        store: Arc<Store>,
        turn_id: &str,
        after: u64,
        total: Arc<AtomicUsize>,
    ) -> Subscription {
        let latest = hub.latest.subscribe();
        Subscription {
            source: Source::Live { hub, latest },
            store,
            turn_id: turn_id.to_string(),
            after,
            total,
        }
    }

    /// A subscription to a turn that has ended: everything comes from the store.
    pub(super) fn stored(
        store: Arc<Store>,
        turn_id: &str,
        after: u64,
        total: Arc<AtomicUsize>,
    ) -> Subscription {
        Subscription {
            source: Source::Stored,
            store,
            turn_id: turn_id.to_string(),
            after,
            total,
        }
    }

    /// True when there is nothing after the cursor and never will be (the subscriber is past `done`).
    pub fn past_end(&self) -> bool {
        match &self.source {
            Source::Live { hub, .. } => hub.state().done.is_some_and(|d| self.after >= d),
            Source::Stored => self
                .store
                .events(&self.turn_id, self.after, 1)
                .is_ok_and(|e| e.is_empty()),
        }
    }

    /// The next events after the cursor, waiting up to `wait` for at least one; moves the cursor past them.
    pub async fn next(&mut self, wait: Duration) -> Batch {
        let deadline = tokio::time::Instant::now() + wait;
        let batch = match &mut self.source {
            Source::Stored => {
                let events: Vec<_> = self
                    .store
                    .events(&self.turn_id, self.after, MAX_BATCH)
                    .unwrap_or_default()
                    .into_iter()
                    .map(Arc::new)
                    .collect();
                let finished = events.len() < MAX_BATCH;
                Batch { events, finished }
            }
            Source::Live { hub, latest } => loop {
                // Mark the current value seen before reading, so a publish after the read still wakes us.
                latest.borrow_and_update();
                let (events, finished) = hub.read(&self.store, &self.turn_id, self.after);
                if !events.is_empty() || finished {
                    break Batch { events, finished };
                }
                match tokio::time::timeout_at(deadline, latest.changed()).await {
                    Ok(Ok(())) => continue,
                    _ => {
                        break Batch {
                            events,
                            finished: false,
                        };
                    }
                }
            },
        };
        if let Some(last) = batch.events.last() {
            self.after = last.seq;
        }
        batch
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::Relaxed);
        if let Source::Live { hub, .. } = &self.source {
            hub.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: &str) -> Arc<StreamEvent> {
        Arc::new(StreamEvent {
            seq,
            kind: kind.parse().unwrap(),
            data: "{}".into(),
        })
    }

    fn stored_turn(n: u64) -> (Arc<Store>, Arc<Hub>) {
        let store = Arc::new(Store::open_in_memory().unwrap());
        store.ensure_conversation("c", "/p", None).unwrap();
        store.insert_turn("t", "c", "x", None, &[]).unwrap();
        let hub = Hub::new();
        let events: Vec<_> = (1..=n).map(|i| ev(i, "text_delta")).collect();
        store.append_events("t", &events).unwrap();
        hub.publish(&events);
        (store, hub)
    }

    #[tokio::test]
    async fn a_reader_gets_everything_once_from_any_point_across_ring_and_store() {
        let (store, hub) = stored_turn(3000);
        let done = ev(3001, "done");
        store
            .append_events("t", std::slice::from_ref(&done))
            .unwrap();
        hub.publish(&[done]);
        for start in [0, 5, 1975, 1976, 2999, 3000] {
            let total = Arc::new(AtomicUsize::new(1));
            hub.subscribers.fetch_add(1, Ordering::Relaxed);
            let mut sub = Subscription::live(hub.clone(), store.clone(), "t", start, total);
            let mut seqs = Vec::new();
            loop {
                let batch = sub.next(Duration::ZERO).await;
                seqs.extend(batch.events.iter().map(|e| e.seq));
                if batch.finished {
                    break;
                }
            }
            assert_eq!(seqs, (start + 1..=3001).collect::<Vec<_>>(), "from {start}");
        }
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_publish() {
        let (store, hub) = stored_turn(1);
        let total = Arc::new(AtomicUsize::new(1));
        hub.subscribers.fetch_add(1, Ordering::Relaxed);
        let mut sub = Subscription::live(hub.clone(), store, "t", 1, total);
        let empty = sub.next(Duration::from_millis(10)).await;
        assert!(empty.events.is_empty() && !empty.finished);
        let publisher = hub.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            publisher.publish(&[ev(2, "done")]);
        });
        let batch = sub.next(Duration::from_secs(5)).await;
        assert_eq!(batch.events.len(), 1);
        assert!(batch.finished);
        assert!(sub.past_end());
    }
}
