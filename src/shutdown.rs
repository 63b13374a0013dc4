//! The shutdown signal: one [`Trigger`] says stop, any number of [`Shutdown`] handles wait for it.
//!
//! It sits below both the supervisor (which stops a child's task with it) and the server (whose accept loops stop
//! with it), so neither imports the other for it.

use tokio::sync::watch;

/// The side that says stop. Dropping it without firing does not signal.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// The side that waits for the stop; clone it for each task that must stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and the first handle waiting on it.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Says stop to every handle, now and later (a handle made after this sees it at once).
    pub fn fire(&self) {
        // send_replace: the value is kept even while no handle is listening.
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once the stop was said (the watch's guard is dropped inside, so callers stay `Send`). If the
    /// trigger is dropped without firing, it resolves too: nothing is left to say stop or to wait for.
    pub async fn signalled(&mut self) {
        let _ = self.0.wait_for(|set| *set).await;
    }

    /// Whether the stop was said.
    pub fn is_signalled(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_handle_hears_the_stop_once_it_is_said() {
        let (trigger, mut first) = channel();
        let mut second = first.clone();
        assert!(!first.is_signalled());
        let waiting = tokio::spawn(async move { second.signalled().await });
        trigger.fire();
        waiting.await.unwrap();
        first.signalled().await;
        assert!(first.is_signalled());
    }
}
