//! The Web Push tables: the browsers' subscriptions and the outbox of messages still to send (docs/architecture.md).
//! A subscription made under a cookie sign-in is removed with it (triggers on `auth_sessions`, and
//! [`Store::prune_push_subscriptions`] for sign-ins that merely expired).

use rusqlite::{OptionalExtension, Row, params};

use super::{Result, Store};

/// At most this many subscriptions, so the table cannot grow without end.
pub const MAX_PUSH_SUBSCRIPTIONS: i64 = 20;

/// A browser's push subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// Its id (a UUID).
    pub id: String,
    /// The push service's URL for this browser: a capability URL, never logged.
    pub endpoint: String,
    /// The browser's P-256 public key, base64url.
    pub p256dh: String,
    /// The browser's auth secret, base64url.
    pub auth: String,
    /// Show no conversation content on the lock screen.
    pub hide_content: bool,
}

/// What storing a subscription did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// A new one, with this id.
    Created(String),
    /// The endpoint was known: its keys and setting were updated.
    Updated(String),
    /// There are [`MAX_PUSH_SUBSCRIPTIONS`] already.
    Full,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The row's id.
    pub id: i64,
    /// To whom.
    pub subscription_id: String,
    /// The plaintext JSON.
    pub payload: String,
    /// The `Urgency` header.
    pub urgency: String,
    /// The `TTL` header (seconds).
    pub ttl: i64,
    /// The `Topic` header, if any.
    pub topic: Option<String>,
    /// Tries so far.
    pub attempts: i64,
    /// When it is due (unix seconds).
    pub next_at: i64,
}

fn subscription(r: &Row) -> rusqlite::Result<PushSubscription> {
    Ok(PushSubscription {
        id: r.get(0)?,
        endpoint: r.get(1)?,
        p256dh: r.get(2)?,
        auth: r.get(3)?,
        hide_content: r.get(4)?,
    })
}

const SUBSCRIPTION: &str =
    "SELECT id, endpoint, p256dh, auth, hide_content FROM push_subscriptions";

impl Store {
    /// Stores a subscription, or updates the one with the same endpoint (keys, setting, sign-in).
    pub fn upsert_push_subscription(
        &self,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        hide_content: bool,
        session_hash: Option<&str>,
    ) -> Result<Subscribed> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let known: Option<String> = tx
            .query_row(
                "SELECT id FROM push_subscriptions WHERE endpoint = ?1",
                [endpoint],
                |r| r.get(0),
            )
            .optional()?;
        let done = match known {
            Some(id) => {
                tx.execute(
                    "UPDATE push_subscriptions SET p256dh = ?2, auth = ?3, hide_content = ?4, session_hash = ?5,
                     failures = 0 WHERE id = ?1",
                    params![id, p256dh, auth, hide_content, session_hash],
                )?;
                Subscribed::Updated(id)
            }
            None => {
                let count: i64 =
                    tx.query_row("SELECT count(*) FROM push_subscriptions", [], |r| r.get(0))?;
                if count >= MAX_PUSH_SUBSCRIPTIONS {
                    return Ok(Subscribed::Full);
                }
                let id = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO push_subscriptions (id, endpoint, p256dh, auth, hide_content, session_hash, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, unixepoch())",
                    params![id, endpoint, p256dh, auth, hide_content, session_hash],
                )?;
                Subscribed::Created(id)
            }
        };
        tx.commit()?;
        Ok(done)
    }

    /// Removes the subscription with this endpoint (and its outbox rows); false if there was none.
    pub fn delete_push_subscription_by_endpoint(&self, endpoint: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "DELETE FROM push_subscriptions WHERE endpoint = ?1",
            [endpoint],
        )? > 0)
    }

    /// Removes a subscription (and its outbox rows).
    pub fn delete_push_subscription(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM push_subscriptions WHERE id = ?1", [id])?
            > 0)
    }

    /// The subscription with this endpoint.
    pub fn push_subscription_by_endpoint(
        &self,
        endpoint: &str,
    ) -> Result<Option<PushSubscription>> {
        self.conn()
            .query_row(
                &format!("{SUBSCRIPTION} WHERE endpoint = ?1"),
                [endpoint],
                subscription,
            )
            .optional()
    }

    /// The subscription with this id.
    pub fn push_subscription(&self, id: &str) -> Result<Option<PushSubscription>> {
        self.conn()
            .query_row(&format!("{SUBSCRIPTION} WHERE id = ?1"), [id], subscription)
            .optional()
    }

    /// Removes the subscriptions whose sign-in expired or is gone (revoking one removes them at once).
    pub fn prune_push_subscriptions(&self) -> Result<usize> {
        self.conn().execute(
            "DELETE FROM push_subscriptions WHERE session_hash IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM auth_sessions s WHERE s.token_hash = session_hash
                 AND s.revoked = 0 AND s.expires_at > unixepoch())",
            [],
        )
    }

    /// Every live subscription (after pruning those of expired sign-ins).
    pub fn push_subscriptions(&self) -> Result<Vec<PushSubscription>> {
        self.prune_push_subscriptions()?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("{SUBSCRIPTION} ORDER BY created_at, id"))?;
        stmt.query_map([], subscription)?.collect()
    }

    /// Queues a message for a subscription, due now; returns its row id.
    pub fn enqueue_push(
        &self,
        subscription_id: &str,
        payload: &str,
        urgency: &str,
        ttl: i64,
        topic: Option<&str>,
    ) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO push_outbox (subscription_id, payload, urgency, ttl, topic, created_at, next_at)
             VALUES (?1, ?2, ?3, ?4, ?5, unixepoch(), unixepoch())",
            params![subscription_id, payload, urgency, ttl, topic],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The outbox row due first (due or not: the caller waits for `next_at`).
    pub fn next_push(&self) -> Result<Option<Outgoing>> {
        self.conn()
            .query_row(
                "SELECT id, subscription_id, payload, urgency, ttl, topic, attempts, next_at FROM push_outbox
                 ORDER BY next_at, id LIMIT 1",
                [],
                |r| {
                    Ok(Outgoing {
                        id: r.get(0)?,
                        subscription_id: r.get(1)?,
                        payload: r.get(2)?,
                        urgency: r.get(3)?,
                        ttl: r.get(4)?,
                        topic: r.get(5)?,
                        attempts: r.get(6)?,
                        next_at: r.get(7)?,
                    })
                },
            )
            .optional()
    }

    /// Records a failed try of an outbox row: one more attempt, due again at `next_at` (unix seconds).
    pub fn push_attempted(&self, id: i64, next_at: i64) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE push_subscriptions SET failures = failures + 1
             WHERE id = (SELECT subscription_id FROM push_outbox WHERE id = ?1)",
            [id],
        )?;
        conn.execute(
            "UPDATE push_outbox SET attempts = attempts + 1, next_at = ?2 WHERE id = ?1",
            params![id, next_at],
        )?;
        Ok(())
    }

    /// Removes an outbox row (sent, or given up on).
    pub fn delete_push(&self, id: i64) -> Result<()> {
        self.conn()
            .execute("DELETE FROM push_outbox WHERE id = ?1", [id])?;
        Ok(())
    }

    /// A message reached the service: the subscription's failures start again from zero.
    pub fn push_delivered(&self, id: i64) -> Result<()> {
        let conn = self.conn();
        conn.execute(
            "UPDATE push_subscriptions SET failures = 0
             WHERE id = (SELECT subscription_id FROM push_outbox WHERE id = ?1)",
            [id],
        )?;
        conn.execute("DELETE FROM push_outbox WHERE id = ?1", [id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(store: &Store, n: usize, session: Option<&str>) -> Subscribed {
        store
            .upsert_push_subscription(
                &format!("https://push.example/{n}"),
                "p",
                "a",
                false,
                session,
            )
            .unwrap()
    }

    #[test]
    fn upsert_updates_and_caps() {
        let store = Store::open_in_memory().unwrap();
        let Subscribed::Created(id) = sub(&store, 0, None) else {
            panic!()
        };
        assert_eq!(sub(&store, 0, None), Subscribed::Updated(id.clone()));
        for n in 1..20 {
            assert!(matches!(sub(&store, n, None), Subscribed::Created(_)));
        }
        assert_eq!(sub(&store, 20, None), Subscribed::Full);
        // Updating a known one still works when full.
        assert_eq!(sub(&store, 0, None), Subscribed::Updated(id.clone()));
        assert_eq!(store.push_subscriptions().unwrap().len(), 20);
        assert!(
            store
                .delete_push_subscription_by_endpoint("https://push.example/0")
                .unwrap()
        );
        assert!(
            !store
                .delete_push_subscription_by_endpoint("https://push.example/0")
                .unwrap()
        );
        assert!(matches!(sub(&store, 20, None), Subscribed::Created(_)));
    }

    #[test]
    fn outbox_rows_follow_their_subscription() {
        let store = Store::open_in_memory().unwrap();
        let Subscribed::Created(id) = sub(&store, 0, None) else {
            panic!()
        };
        let row = store
            .enqueue_push(&id, "{}", "high", 60, Some("t"))
            .unwrap();
        let next = store.next_push().unwrap().unwrap();
        assert_eq!(
            (next.id, next.attempts, next.urgency.as_str()),
            (row, 0, "high")
        );
        store.push_attempted(row, next.next_at + 5).unwrap();
        let again = store.next_push().unwrap().unwrap();
        assert_eq!((again.attempts, again.next_at), (1, next.next_at + 5));
        store.push_delivered(row).unwrap();
        assert_eq!(store.next_push().unwrap(), None);
        store.enqueue_push(&id, "{}", "normal", 60, None).unwrap();
        assert!(store.delete_push_subscription(&id).unwrap());
        assert_eq!(store.next_push().unwrap(), None, "cascade");
    }

    #[test]
    fn a_removed_or_expired_sign_in_takes_its_subscriptions() {
        let store = Store::open_in_memory().unwrap();
        store.create_session("s1", 3600).unwrap();
        store.create_session("s2", 3600).unwrap();
        store.create_session("old", -1).unwrap();
        sub(&store, 1, Some("s1"));
        sub(&store, 2, Some("s2"));
        sub(&store, 3, None);
        sub(&store, 4, Some("old"));
        let endpoints = |s: &Store| -> Vec<String> {
            s.push_subscriptions()
                .unwrap()
                .into_iter()
                .map(|p| p.endpoint)
                .collect()
        };
        assert_eq!(
            endpoints(&store).len(),
            3,
            "the expired sign-in's is pruned"
        );
        store.revoke_session("s1").unwrap();
        assert!(
            store
                .push_subscription_by_endpoint("https://push.example/1")
                .unwrap()
                .is_none()
        );
        store.revoke_all_sessions().unwrap();
        assert_eq!(
            endpoints(&store),
            vec!["https://push.example/3".to_string()]
        );
    }
}
