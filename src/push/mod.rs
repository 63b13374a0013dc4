//! Web Push: the VAPID key pair, the subscriptions' messages encrypted for each browser (RFC 8291 `aes128gcm`,
//! RFC 8292 VAPID), an outbox in SQLite so a message is sent once, and one task that delivers them over hyper and
//! rustls with retries. Telling it something to send never blocks the caller.

mod ece;
mod payload;
mod send;
mod vapid;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Shared;
use crate::store::{PendingRequest, Store, TurnStatus};

pub use send::{ALLOW_LOOPBACK, check_endpoint};

/// A presence report holds this long (the app reports every 30 s).
const PRESENCE: Duration = Duration::from_secs(45);
/// Presence reports kept at most (one per client; the oldest go first).
const MAX_CLIENTS: usize = 256;

/// Something worth a notification.
// A notice is rare and short-lived: boxing the request would only move the size elsewhere.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Notice {
    /// A turn ended (succeeded, failed, cancelled, timed out).
    TurnEnded {
        /// Its conversation.
        conversation_id: String,
        /// The conversation's title, if it has one.
        title: Option<String>,
        /// The conversation's project directory.
        project: String,
        /// The turn.
        turn_id: String,
        /// How it ended.
        status: TurnStatus,
        /// The reply (or the error), whose first words the notification shows.
        text: Option<String>,
    },
    /// Claude waits for an answer (a pending request).
    Waiting {
        /// The conversation's title, if it has one.
        title: Option<String>,
        /// The conversation's project directory.
        project: String,
        /// What Claude asks.
        request: PendingRequest,
    },
    /// The public address changed: every browser gets the new URL with a one-time pairing token of its own.
    AddressChanged {
        /// The new public URL (`https://…`).
        url: String,
    },
}

/// What the handle and the delivery task share (not the store: the task holds it weakly, so that it stops with
/// the server).
pub(crate) struct Core {
    settings: Arc<Shared>,
    vapid: Mutex<Option<Arc<vapid::Vapid>>>,
    wake: tokio::sync::Notify,
    presence: Mutex<HashMap<String, (String, Instant)>>,
}

impl Core {
    /// The VAPID key pair, loaded or made on first use (and read again when `[push] subject` changed).
    fn vapid(&self) -> anyhow::Result<Arc<vapid::Vapid>> {
        let settings = self.settings.get();
        let mut cell = self.vapid.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = &*cell
            && v.subject() == settings.push_subject
        {
            return Ok(v.clone());
        }
        let v = Arc::new(vapid::Vapid::load_or_create(
            &settings.data_dir,
            &settings.push_subject,
        )?);
        *cell = Some(v.clone());
        Ok(v)
    }

    /// True when someone reported `conversation` on screen in the last 45 s.
    fn watched(&self, conversation: &str) -> bool {
        let presence = self.presence.lock().unwrap_or_else(|e| e.into_inner());
        presence
            .values()
            .any(|(c, at)| c == conversation && at.elapsed() < PRESENCE)
    }
}

/// The handle to the push sender; cheap to clone.
#[derive(Clone)]
pub struct Push {
    store: Arc<Store>,
    core: Arc<Core>,
}

impl Push {
    /// Starts the sender on the current runtime (outside one, nothing is sent).
    pub fn start(store: Arc<Store>, settings: Arc<Shared>) -> Push {
        let core = Arc::new(Core {
            settings,
            vapid: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            presence: Mutex::new(HashMap::new()),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(send::run(Arc::downgrade(&store), core.clone()));
        }
        Push { store, core }
    }

    /// The VAPID public key, base64url (no padding) of the uncompressed P-256 point; the key pair is made on first
    /// use and kept in the data dir (private key 0600).
    pub fn public_key(&self) -> anyhow::Result<String> {
        Ok(self.core.vapid()?.public_key().to_string())
    }

    /// Whether `notice` is about a conversation someone is watching in a visible app, so nothing is sent. Callers
    /// that queue `notify` on another thread ask first, so that the presence of the moment decides.
    pub fn held_back(&self, notice: &Notice) -> bool {
        let conversation = match notice {
            Notice::TurnEnded {
                conversation_id, ..
            } => Some(conversation_id.as_str()),
            Notice::Waiting { request, .. } => Some(request.conversation_id.as_str()),
            Notice::AddressChanged { .. } => None,
        };
        conversation.is_some_and(|c| self.core.watched(c))
    }

    /// Queues `notice` for every subscription (none for a conversation someone is watching); returns at once.
    pub fn notify(&self, notice: Notice) {
        if self.held_back(&notice) {
            return;
        }
        let subs = match self.store.push_subscriptions() {
            Ok(subs) => subs,
            Err(e) => return tracing::warn!("push subscriptions unreadable: {e}"),
        };
        if let Notice::AddressChanged { url } = &notice {
            // A pairing token for each browser (stored as a hash, 10 minutes, one use, as `remote-agent pair`
            // makes them): each signs itself in at the new address. The tokens are never logged.
            for sub in subs {
                let token = crate::auth::random_token();
                let hash = crate::auth::sha256_hex(token.as_bytes());
                match self
                    .store
                    .create_pairing(&hash, crate::auth::PAIRING_TTL_SECS)
                {
                    Ok(()) => self.enqueue(&sub.id, &payload::address(url, Some(&token))),
                    Err(e) => tracing::warn!("no pairing token for the new address: {e}"),
                }
            }
            self.core.wake.notify_one();
            return;
        }
        let mut messages: [Option<payload::Message>; 2] = [None, None];
        for sub in subs {
            let message = messages[sub.hide_content as usize]
                .get_or_insert_with(|| payload::build(&notice, sub.hide_content));
            self.enqueue(&sub.id, message);
        }
        self.core.wake.notify_one();
    }

    /// Queues a test message for the subscription with this endpoint; false if there is none.
    pub fn test(&self, endpoint: &str) -> bool {
        match self.store.push_subscription_by_endpoint(endpoint) {
            Ok(Some(sub)) => {
                self.enqueue(&sub.id, &payload::test());
                self.core.wake.notify_one();
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!("push subscriptions unreadable: {e}");
                false
            }
        }
    }

    fn enqueue(&self, subscription: &str, message: &payload::Message) {
        if let Err(e) = self.store.enqueue_push(
            subscription,
            &message.text(),
            message.urgency,
            message.ttl,
            message.topic.as_deref(),
        ) {
            tracing::warn!("push outbox: {e}");
        }
    }

    /// A signed-in app shows `conversation` (None: none, or hidden) now; it reports again at least every 30 s while
    /// it does, and is taken as gone 45 s after its last report.
    pub fn present(&self, client: &str, conversation: Option<String>) {
        let mut presence = self.core.presence.lock().unwrap_or_else(|e| e.into_inner());
        presence.retain(|_, (_, at)| at.elapsed() < PRESENCE);
        match conversation {
            Some(c) => {
                if presence.len() >= MAX_CLIENTS && !presence.contains_key(client) {
                    return;
                }
                presence.insert(client.to_string(), (c, Instant::now()));
            }
            None => {
                presence.remove(client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(dir: &std::path::Path) -> Push {
        let settings = crate::config::Settings::resolve(
            &Default::default(),
            &|name: &str| match name {
                "REMOTE_AGENT_CONFIG" => Some(dir.join("config.toml").display().to_string()),
                "REMOTE_AGENT_DATA_DIR" => Some(dir.join("data").display().to_string()),
                "REMOTE_AGENT_STATE_DIR" => Some(dir.join("state").display().to_string()),
                "AUTH_USERNAME" => Some("me".into()),
                "AUTH_PASSWORD" => Some("a long password".into()),
                _ => None,
            },
            dir,
        )
        .unwrap();
        Push::start(
            Arc::new(Store::open_in_memory().unwrap()),
            Shared::new(settings),
        )
    }

    fn turn(conversation: &str) -> Notice {
        Notice::TurnEnded {
            conversation_id: conversation.into(),
            title: None,
            project: "/p/x".into(),
            turn_id: "t".into(),
            status: TurnStatus::Failed,
            text: None,
        }
    }

    #[test]
    fn notices_queue_per_subscription_unless_watched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        let push = push(dir.path());
        assert_eq!(push.public_key().unwrap().len(), 87);
        for n in 0..2 {
            push.store
                .upsert_push_subscription(&format!("https://p.example/{n}"), "k", "a", n == 1, None)
                .unwrap();
        }
        push.present("client", Some("c1".into()));
        push.notify(turn("c1"));
        assert_eq!(
            push.store.next_push().unwrap(),
            None,
            "suppressed while watched"
        );
        push.present("client", None);
        push.notify(turn("c1"));
        let mut rows = vec![];
        while let Some(row) = push.store.next_push().unwrap() {
            push.store.delete_push(row.id).unwrap();
            rows.push(row);
        }
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().any(|r| r.payload.contains("A turn ended in x")));
        assert!(push.test("https://p.example/0"));
        assert!(!push.test("https://p.example/none"));
    }
}
