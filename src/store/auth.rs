//! The sign-in tables: browser sessions and one-time pairing tokens, each stored by the hash of its token.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store};

/// What a pairing link is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Unused and in time.
    Valid,
    /// Used already.
    Used,
    /// Past its time.
    Expired,
    /// Never made here.
    Unknown,
}

/// The two tables holding a token by its hash, with when it was made and when it expires.
const SESSIONS: &str = "auth_sessions";
const PAIRING_TOKENS: &str = "pairing_tokens";

/// Records a token of `table` (one of the two above: the name is ours, never input), by its hash, valid for
/// `ttl_secs`. A sign-in and a pairing token are made alike; only spending a pairing token differs.
fn insert_token(conn: &Connection, table: &str, token_hash: &str, ttl_secs: i64) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO {table} (token_hash, created_at, expires_at)
             VALUES (?1, unixepoch(), unixepoch() + ?2)"
        ),
        params![token_hash, ttl_secs],
    )?;
    Ok(())
}

impl Store {
    /// Records a browser sign-in, by the hash of its token, valid for `ttl_secs`.
    pub fn create_session(&self, token_hash: &str, ttl_secs: i64) -> Result<()> {
        insert_token(&self.conn(), SESSIONS, token_hash, ttl_secs)
    }

    /// True for a sign-in that exists, has not expired and was not revoked.
    pub fn session_valid(&self, token_hash: &str) -> Result<bool> {
        self.conn()
            .prepare_cached(
                "SELECT 1 FROM auth_sessions
                 WHERE token_hash = ?1 AND revoked = 0 AND expires_at > unixepoch()",
            )?
            .exists([token_hash])
    }

    /// Revokes one sign-in; false if there was none.
    pub fn revoke_session(&self, token_hash: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE auth_sessions SET revoked = 1 WHERE token_hash = ?1 AND revoked = 0",
            [token_hash],
        )? > 0)
    }

    /// Revokes every sign-in; returns how many were live.
    pub fn revoke_all_sessions(&self) -> Result<usize> {
        self.conn().execute(
            "UPDATE auth_sessions SET revoked = 1 WHERE revoked = 0 AND expires_at > unixepoch()",
            [],
        )
    }

    /// Records a one-time pairing token, by its hash, valid for `ttl_secs`.
    pub fn create_pairing(&self, token_hash: &str, ttl_secs: i64) -> Result<()> {
        insert_token(&self.conn(), PAIRING_TOKENS, token_hash, ttl_secs)
    }

    /// A pairing token's state, without spending it.
    pub fn pairing(&self, token_hash: &str) -> Result<Pairing> {
        let row: Option<(bool, bool)> = self
            .conn()
            .query_row(
                "SELECT used_at IS NOT NULL, expires_at <= unixepoch() FROM pairing_tokens WHERE token_hash = ?1",
                [token_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            None => Pairing::Unknown,
            Some((true, _)) => Pairing::Used,
            Some((false, true)) => Pairing::Expired,
            Some((false, false)) => Pairing::Valid,
        })
    }

    /// Spends a valid pairing token and records the sign-in it buys, in one transaction; the token's state
    /// otherwise.
    pub fn spend_pairing(
        &self,
        token_hash: &str,
        session_hash: &str,
        ttl_secs: i64,
    ) -> Result<Pairing> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let spent = tx.execute(
            "UPDATE pairing_tokens SET used_at = unixepoch()
             WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > unixepoch()",
            [token_hash],
        )?;
        if spent == 0 {
            drop(tx);
            drop(conn);
            return self.pairing(token_hash);
        }
        insert_token(&tx, SESSIONS, session_hash, ttl_secs)?;
        tx.commit()?;
        Ok(Pairing::Valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_pairing_tokens() {
        let s = Store::open_in_memory().unwrap();
        s.create_session("h1", 60).unwrap();
        s.create_session("h2", -1).unwrap();
        assert!(s.session_valid("h1").unwrap());
        assert!(!s.session_valid("h2").unwrap(), "expired");
        assert!(!s.session_valid("nope").unwrap());
        assert_eq!(s.revoke_all_sessions().unwrap(), 1);
        assert!(!s.session_valid("h1").unwrap());
        s.create_pairing("p", 600).unwrap();
        assert_eq!(s.pairing("p").unwrap(), Pairing::Valid);
        assert_eq!(s.spend_pairing("p", "h3", 60).unwrap(), Pairing::Valid);
        assert!(s.session_valid("h3").unwrap());
        assert_eq!(s.spend_pairing("p", "h4", 60).unwrap(), Pairing::Used);
        assert!(!s.session_valid("h4").unwrap());
        s.create_pairing("old", -1).unwrap();
        assert_eq!(s.spend_pairing("old", "h5", 60).unwrap(), Pairing::Expired);
        assert_eq!(s.pairing("other").unwrap(), Pairing::Unknown);
    }
}
