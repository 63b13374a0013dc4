//! RFC 8291 message encryption with RFC 8188's `aes128gcm` content coding: one record, a fresh ephemeral P-256
//! key and salt per message (docs/architecture.md, "Push").

use aes_gcm::Aes128Gcm;
use aes_gcm::aead::{Aead, KeyInit};
use hkdf::Hkdf;
use sha2::Sha256;

/// The record size written in the header (one record: the whole body stays under it).
const RECORD_SIZE: u32 = 4096;

/// What a body adds to its plaintext: salt (16), record size (4), key id length (1), the sender's key (65), the
/// delimiter (1) and the AES-GCM tag (16).
pub const OVERHEAD: usize = 16 + 4 + 1 + 65 + 1 + 16;

/// A fresh random P-256 secret key.
pub fn random_secret() -> anyhow::Result<p256::SecretKey> {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
            return Ok(key);
        }
    }
}

/// Encrypts `plaintext` for the browser whose key is `ua_public` (65-byte uncompressed point) and auth secret
/// `auth` (16 bytes): the whole `aes128gcm` body.
pub fn encrypt(ua_public: &[u8], auth: &[u8], plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    encrypt_with(ua_public, auth, plaintext, &random_secret()?, salt)
}

/// [`encrypt`] with the sender's key and salt given (the RFC's test vector fixes them).
fn encrypt_with(
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
    as_secret: &p256::SecretKey,
    salt: [u8; 16],
) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        plaintext.len() + OVERHEAD <= RECORD_SIZE as usize,
        "payload too large"
    );
    let ua = p256::PublicKey::from_sec1_bytes(ua_public)
        .map_err(|_| anyhow::anyhow!("p256dh is not a P-256 point"))?;
    anyhow::ensure!(ua_public.len() == 65, "p256dh is not an uncompressed point");
    let as_public = as_secret.public_key().to_sec1_bytes();
    anyhow::ensure!(as_public.len() == 65, "not an uncompressed point");
    let shared = as_secret.diffie_hellman(&ua);
    let (cek, nonce) = keys(
        shared.raw_secret_bytes(),
        auth,
        ua_public,
        &as_public,
        &salt,
    )?;
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2);
    let sealed = Aes128Gcm::new_from_slice(&cek)
        .map_err(|_| anyhow::anyhow!("bad key length"))?
        .encrypt(&nonce.into(), record.as_slice())
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
    let mut body = Vec::with_capacity(21 + 65 + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The content encryption key and nonce (RFC 8291 section 3.4, RFC 8188 section 2.2).
fn keys(
    ecdh_secret: &[u8],
    auth: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    salt: &[u8],
) -> anyhow::Result<([u8; 16], [u8; 12])> {
    anyhow::ensure!(auth.len() == 16, "auth is not 16 bytes");
    let mut info = Vec::with_capacity(14 + 130);
    info.extend_from_slice(b"WebPush: info\0");
    info.extend_from_slice(ua_public);
    info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), ecdh_secret)
        .expand(&info, &mut ikm)
        .map_err(|_| anyhow::anyhow!("hkdf"))?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|_| anyhow::anyhow!("hkdf"))?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| anyhow::anyhow!("hkdf"))?;
    Ok((cek, nonce))
}

#[cfg(test)]
pub(crate) fn decrypt(
    ua_secret: &p256::SecretKey,
    auth: &[u8],
    body: &[u8],
) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(body.len() > 21 + 65 + 16 && body[20] == 65, "short body");
    let (salt, as_public, sealed) = (&body[..16], &body[21..86], &body[86..]);
    let as_key = p256::PublicKey::from_sec1_bytes(as_public)?;
    let ua_public = ua_secret.public_key().to_sec1_bytes();
    let shared = ua_secret.diffie_hellman(&as_key);
    let (cek, nonce) = keys(shared.raw_secret_bytes(), auth, &ua_public, as_public, salt)?;
    let mut plain = Aes128Gcm::new_from_slice(&cek)?
        .decrypt(&nonce.into(), sealed)
        .map_err(|_| anyhow::anyhow!("does not decrypt"))?;
    while plain.last() == Some(&0) {
        plain.pop();
    }
    anyhow::ensure!(plain.pop() == Some(2), "no delimiter");
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn b64(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap()
    }

    #[test]
    fn decrypts_what_it_encrypted() {
        let ua = random_secret().unwrap();
        let ua_public = ua.public_key().to_sec1_bytes();
        let auth = [7u8; 16];
        let body = encrypt(&ua_public, &auth, b"{\"kind\":\"test\"}").unwrap();
        assert_eq!(body.len(), 15 + OVERHEAD);
        assert_eq!(decrypt(&ua, &auth, &body).unwrap(), b"{\"kind\":\"test\"}");
        let other = random_secret().unwrap();
        assert!(decrypt(&other, &auth, &body).is_err());
        assert!(decrypt(&ua, &[8u8; 16], &body).is_err());
        assert!(
            encrypt(&ua_public, &auth, &[b'x'; 4000]).is_err(),
            "over one record"
        );
        assert!(encrypt(&ua_public[..64], &auth, b"x").is_err());
        assert!(encrypt(&ua_public, &auth[..15], b"x").is_err());
    }

    /// RFC 8291, Appendix A.
    #[test]
    fn rfc8291_appendix_a() {
        let as_secret =
            p256::SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"))
                .unwrap();
        let ua_public = b64(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        );
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let body = encrypt_with(
            &ua_public,
            &auth,
            b"When I grow up, I want to be a watermelon",
            &as_secret,
            salt,
        )
        .unwrap();
        assert_eq!(
            B64.encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
        let ua_secret =
            p256::SecretKey::from_slice(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
                .unwrap();
        assert_eq!(
            decrypt(&ua_secret, &auth, &body).unwrap(),
            b"When I grow up, I want to be a watermelon"
        );
    }
}
