//! The VAPID key pair (RFC 8292): made on first use, kept in the data dir (private key 0600), and the ES256 JWTs
//! that sign each request, reused per audience until an hour before they expire.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

/// The key file's name in the data dir.
pub const FILE_NAME: &str = "vapid.pem";
/// How long a JWT is valid (services accept at most 24 h).
const LIFETIME: u64 = 12 * 3600;
/// A cached JWT is made anew this long before it expires.
const MARGIN: u64 = 3600;

/// The server's VAPID identity.
pub struct Vapid {
    key: SigningKey,
    public: String,
    subject: String,
    jwts: Mutex<HashMap<String, (String, u64)>>,
}

impl Vapid {
    /// Loads `<dir>/vapid.pem`, or makes a new key pair there (0600).
    pub fn load_or_create(dir: &Path, subject: &str) -> anyhow::Result<Vapid> {
        let path = dir.join(FILE_NAME);
        let secret = match std::fs::read_to_string(&path) {
            Ok(pem) => p256::SecretKey::from_sec1_pem(&pem)
                .map_err(|_| anyhow::anyhow!("{} is not a P-256 key", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::files::private_dir(dir, "data dir ")?;
                let secret = super::ece::random_secret()?;
                let pem = secret
                    .to_sec1_pem(p256::pkcs8::LineEnding::LF)
                    .map_err(|_| anyhow::anyhow!("encoding the VAPID key"))?;
                let tmp = dir.join(format!("{FILE_NAME}.tmp"));
                let mut file = crate::files::private_file()
                    .write(true)
                    .truncate(true)
                    .open(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?;
                crate::files::make_private(&tmp)?;
                file.write_all(pem.as_bytes())?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("creating {}", path.display()))?;
                tracing::info!("made a new VAPID key pair ({})", path.display());
                secret
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Vapid::new(secret, subject))
    }

    fn new(secret: p256::SecretKey, subject: &str) -> Vapid {
        let public = B64.encode(secret.public_key().to_sec1_bytes());
        Vapid {
            key: SigningKey::from(&secret),
            public,
            subject: subject.to_string(),
            jwts: Mutex::new(HashMap::new()),
        }
    }

    /// The JWT's `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The public key: base64url of the uncompressed point.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push service at `audience` (`scheme://host[:port]`), at `now` (unix s).
    pub fn authorization(&self, audience: &str, now: u64) -> String {
        let mut jwts = self.jwts.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |(_, exp): &&(String, u64)| now + MARGIN < *exp;
        let token = match jwts.get(audience).filter(fresh) {
            Some((token, _)) => token.clone(),
            None => {
                jwts.retain(|_, (_, exp)| *exp > now);
                let exp = now + LIFETIME;
                let token = self.jwt(audience, exp);
                jwts.insert(audience.to_string(), (token.clone(), exp));
                token
            }
        };
        format!("vapid t={token}, k={}", self.public)
    }

    fn jwt(&self, audience: &str, exp: u64) -> String {
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({"aud": audience, "exp": exp, "sub": self.subject});
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let signature: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    #[test]
    fn key_kept_private_and_jwt_verifies_and_is_cached() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let a = Vapid::load_or_create(&data, "mailto:x@localhost").unwrap();
        let mode = std::fs::metadata(data.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Vapid::load_or_create(&data, "mailto:x@localhost").unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(B64.decode(a.public_key()).unwrap().len(), 65);

        let now = 1_800_000_000;
        let header = a.authorization("https://push.example", now);
        let (t, k) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, a.public_key());
        let (input, sig) = t.rsplit_once('.').unwrap();
        let key = VerifyingKey::from_sec1_bytes(&B64.decode(k).unwrap()).unwrap();
        let sig = Signature::from_slice(&B64.decode(sig).unwrap()).unwrap();
        key.verify(input.as_bytes(), &sig).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], now + LIFETIME);
        assert_eq!(claims["sub"], "mailto:x@localhost");
        // Reused until an hour before it expires, then made anew.
        assert_eq!(a.authorization("https://push.example", now + 3600), header);
        assert_ne!(
            a.authorization("https://push.example", now + LIFETIME - 60),
            header
        );
        assert_ne!(a.authorization("https://other.example", now), header);
    }
}
