//! Restart delays for a supervised child: capped exponential backoff that resets after a stable run, and a count
//! of recent restarts. (Spawning, signalling and the stop ladder are in [`crate::process`].)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The first restart delay; it doubles up to [`MAX_DELAY`].
pub const MIN_DELAY: Duration = Duration::from_millis(500);
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// A run this long counts as stable: the next failure starts the backoff over.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);
/// The window over which restarts are counted for the crash-loop warning.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Restart delays: 0.5 s, 1 s, 2 s, … up to 30 s, back to 0.5 s after a stable run.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    recent: VecDeque<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: MIN_DELAY,
            recent: VecDeque::new(),
        }
    }
}

impl Backoff {
    /// The delay before restarting a child that ran for `ran_for`; records the restart.
    pub fn after_exit(&mut self, ran_for: Duration, now: Instant) -> Duration {
        if ran_for >= STABLE_AFTER {
            self.next = MIN_DELAY;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
        delay
    }

    /// Restarts within the last [`WINDOW`].
    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_a_stable_run() {
        let mut b = Backoff::default();
        let t = Instant::now();
        let quick = Duration::from_millis(100);
        let delays: Vec<u64> = (0..9)
            .map(|i| {
                b.after_exit(quick, t + Duration::from_millis(i))
                    .as_millis() as u64
            })
            .collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(b.recent(), 9);
        assert_eq!(
            b.after_exit(STABLE_AFTER, t + Duration::from_secs(1)),
            MIN_DELAY
        );
        // Restarts older than the window no longer count.
        b.after_exit(quick, t + Duration::from_secs(120));
        assert_eq!(b.recent(), 1);
    }
}
