//! Secrets in memory: a redacting newtype so a secret cannot reach a log line,
//! a `Debug` dump or an API response by accident.
//!
//! Secrets are read from the environment (`*_env` config keys), never
//! required inline in a config file.

use std::fmt;
use std::sync::Arc;

/// A secret string. `Debug` and `Display` print `***`; use [`Secret::expose`]
/// at the one place the value is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// Reads the environment variable `name`; `None` when unset or empty.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Self::new)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }
}

/// Encryption at rest for stored secrets (AES-256-GCM, RFC 5116 AEAD) with a
/// key from the environment. The storage reference is the associated data,
/// so a ciphertext copied under another reference does not decrypt.
pub struct SecretBox {
    key: aws_lc_rs::aead::LessSafeKey,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secrets key is not configured (set the variable named by secrets.key_env)")]
    NoKey,
    #[error("the secrets key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a stored secret cannot be decrypted (wrong key or tampered data)")]
    Decrypt,
}

impl SecretBox {
    /// From a base64-encoded 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, SecretError> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| SecretError::BadKey)?;
        let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &raw)
            .map_err(|_| SecretError::BadKey)?;
        Ok(Self {
            key: aws_lc_rs::aead::LessSafeKey::new(unbound),
        })
    }

    pub fn seal(&self, reference: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        use aws_lc_rs::aead::{Aad, Nonce, NONCE_LEN};
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SecretError::Decrypt)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(reference.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretError::Decrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(1); // format version
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    pub fn open(&self, reference: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        use aws_lc_rs::aead::{Aad, Nonce, NONCE_LEN};
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != 1 {
            return Err(SecretError::Decrypt);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| SecretError::Decrypt)?;
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(reference.as_bytes()), &mut buf)
            .map_err(|_| SecretError::Decrypt)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod box_tests {
    use super::*;

    #[test]
    fn seals_and_binds_to_the_reference() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let b = SecretBox::from_base64(key).unwrap();
        let sealed = b.seal("sec_1", b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(b.open("sec_1", &sealed).unwrap(), b"hunter2");
        assert!(b.open("sec_2", &sealed).is_err(), "bound to its reference");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(b.open("sec_1", &tampered).is_err());
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
    }
}
