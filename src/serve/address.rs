//! The moving address: a quick tunnel that restarts comes back on a new URL, which only the computer's terminal
//! shows. `serve` follows `up`'s state file and, when the URL changes from one to another, tells every subscribed
//! browser the new one with a fresh one-time pairing token, so that a phone away from the desk can follow.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::push::{Notice, Push};
use crate::state::{self, TunnelKind};

/// How often the file is read where it cannot be watched.
const POLL: Duration = Duration::from_secs(2);

/// Follows the state file in `state_dir` until the returned task is aborted (or the runtime ends). The URL seen
/// first is the one the browsers already know: only a later, different one is news.
pub(super) fn follow(state_dir: PathBuf, push: Push) -> tokio::task::JoinHandle<()> {
    let file = state::path(&state_dir);
    let watched = crate::config::watch(&file)
        .inspect_err(|e| {
            tracing::warn!(
                "not watching {} for changes ({e}): reading it every {} s",
                file.display(),
                POLL.as_secs()
            )
        })
        .ok();
    // Read before the caller goes on to say it listens: a change after that line is one.
    let mut address = Address::new(quick_url(&state_dir));
    tokio::spawn(async move {
        let (_watcher, mut changed) = match watched {
            Some((w, rx)) => (Some(w), Some(rx)),
            None => (None, None),
        };
        loop {
            match changed.as_mut() {
                Some(rx) => {
                    if rx.recv().await.is_none() {
                        return;
                    }
                }
                None => tokio::time::sleep(POLL).await,
            }
            if let Some(url) = address.seen(quick_url(&state_dir)) {
                announce(&push, url);
            }
        }
    })
}

/// The quick tunnel's URL a live `up` records in `state_dir` (a named tunnel keeps its address).
fn quick_url(state_dir: &Path) -> Option<String> {
    state::read_live(state_dir)
        .filter(|s| s.tunnel.kind == TunnelKind::Quick)
        .and_then(|s| s.tunnel.url)
}

/// The last URL seen. `up` records none while the tunnel restarts, then the new one: the change is from the URL
/// before the gap to the one after it.
struct Address {
    last: Option<String>,
}

impl Address {
    fn new(first: Option<String>) -> Address {
        Address { last: first }
    }

    /// Takes in what the file says now; the new URL when it replaces another.
    fn seen(&mut self, now: Option<String>) -> Option<String> {
        let now = now?;
        if self.last.as_ref() == Some(&now) {
            return None;
        }
        let before = self.last.replace(now.clone());
        // Only an https address goes into a notification's link (a quick tunnel's always is).
        (before.is_some() && now.starts_with("https://")).then_some(now)
    }
}

/// Queues the notice: the push engine gives each browser a pairing token of its own for the new address.
fn announce(push: &Push, url: String) {
    tracing::info!("the public address changed to {url}: telling subscribed browsers");
    push.notify(Notice::AddressChanged { url });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_from_one_url_to_another_is_news() {
        let a = || Some("https://a.trycloudflare.com".to_string());
        let b = || Some("https://b.trycloudflare.com".to_string());
        let mut address = Address::new(None);
        assert_eq!(address.seen(a()), None, "the first URL is not a change");
        assert_eq!(address.seen(a()), None);
        assert_eq!(address.seen(None), None, "the tunnel restarting");
        assert_eq!(address.seen(b()), b());
        assert_eq!(address.seen(b()), None, "told once");
        let mut address = Address::new(a());
        assert_eq!(address.seen(b()), b());
        assert_eq!(address.seen(Some("http://c.example".into())), None);
    }
}
