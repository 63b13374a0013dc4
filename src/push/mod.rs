//! Web Push: the VAPID key pair, the subscriptions' messages encrypted for each browser (RFC 8291 `aes128gcm`,
//! RFC 8292 VAPID), an outbox in SQLite so a message is sent once, and one task that delivers them over hyper and
//! rustls with retries. Telling it something to send never blocks the caller.

use std::sync::Arc;

use crate::config::Shared;
use crate::store::{PendingRequest, Store, TurnStatus};

/// Something worth a notification.
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
    /// The public address changed: the new URL and a fresh one-time pairing token for it.
    AddressChanged {
        /// The new public URL (`https://…`).
        url: String,
        /// A pairing token (already stored, valid 10 minutes, single use).
        pairing_token: String,
    },
}

/// The handle to the push sender; cheap to clone.
#[derive(Clone)]
pub struct Push {
    _store: Arc<Store>,
    _settings: Arc<Shared>,
}

impl Push {
    /// Starts the sender on the current runtime (outside one, nothing is sent).
    pub fn start(store: Arc<Store>, settings: Arc<Shared>) -> Push {
        Push {
            _store: store,
            _settings: settings,
        }
    }

    /// The VAPID public key, base64url (no padding) of the uncompressed P-256 point; the key pair is made on first
    /// use and kept in the data dir (private key 0600).
    pub fn public_key(&self) -> anyhow::Result<String> {
        anyhow::bail!("issue 14: push not built yet")
    }

    /// Queues `notice` for every subscription (none for a conversation someone is watching); returns at once.
    pub fn notify(&self, notice: Notice) {
        let _ = notice;
    }

    /// Queues a test message for the subscription with this endpoint; false if there is none.
    pub fn test(&self, endpoint: &str) -> bool {
        let _ = endpoint;
        false
    }

    /// A signed-in app shows `conversation` (None: none, or hidden) now; it reports again at least every 30 s while
    /// it does, and is taken as gone 45 s after its last report.
    pub fn present(&self, client: &str, conversation: Option<String>) {
        let _ = (client, conversation);
    }
}
