//! The one sealing policy for every secret at rest (issue 14): connection
//! secrets, the IdP's tokens held in codes, consents and sessions, users'
//! upstream tokens, connect confirmations and the signing keys' private
//! halves all go through [`Vault`].
//!
//! Sealing is AES-256-GCM (NIST SP 800-38D) used as an AEAD (RFC 5116) with
//! a fresh random 96-bit nonce per seal. The associated data is the record's
//! store key (from [`super::keys`]), so a sealed blob copied or moved under
//! another key does not open, and any change to it is refused.
//!
//! Format: `version ‖ nonce ‖ ciphertext ‖ tag`.
//! - Version 2 (written now): associated data `drio-vault/2\0{record key}`.
//!   The label keeps a version-2 blob from being relabelled as version 1.
//! - Version 1 (read only): what earlier releases wrote, bound to a caller
//!   chosen reference (the record key for most records; the bare reference
//!   for connection secrets; `signing-key:{kid}` for signing keys). Such
//!   records stay readable and are rewritten as version 2 on their next
//!   write; [`Vault::open_v1_as`] names the old binding where it differed.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

const V1: u8 = 1;
const V2: u8 = 2;
const V2_LABEL: &[u8] = b"drio-vault/2\0";

/// Why a secret could not be sealed or opened. Deliberately coarse: which
/// check failed is of use to an attacker, not to an operator.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VaultError {
    #[error("the secrets key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a stored secret cannot be opened (wrong key, moved or tampered data)")]
    Refused,
    #[error("randomness unavailable")]
    Random,
}

/// Seals and opens secrets with the gateway's secrets key.
pub(crate) struct Vault {
    key: LessSafeKey,
}

impl Vault {
    /// From a base64-encoded 32-byte key (`secrets.key_env`).
    pub(crate) fn from_base64(key: &str) -> Result<Self, VaultError> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| VaultError::BadKey)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| VaultError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `plaintext` bound to the store key `record_key`.
    pub(crate) fn seal(&self, record_key: &str, plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(v2_aad(record_key)),
                &mut buf,
            )
            .map_err(|_| VaultError::Refused)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(V2);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens a blob stored under `record_key` (a version-1 blob must have
    /// been bound to the record key too).
    pub(crate) fn open(&self, record_key: &str, sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.open_v1_as(record_key, record_key, sealed)
    }

    /// Opens a blob stored under `record_key` whose version-1 form was bound
    /// to `v1_reference` instead (connection secrets, signing keys).
    pub(crate) fn open_v1_as(
        &self,
        record_key: &str,
        v1_reference: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        if sealed.len() < 1 + NONCE_LEN {
            return Err(VaultError::Refused);
        }
        let aad = match sealed[0] {
            V2 => v2_aad(record_key),
            V1 => v1_reference.as_bytes().to_vec(),
            _ => return Err(VaultError::Refused),
        };
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| VaultError::Refused)?;
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| VaultError::Refused)?;
        Ok(plain.to_vec())
    }

    /// [`Vault::seal`] as base64 text, for secrets held inside JSON records.
    pub(crate) fn seal_text(
        &self,
        record_key: &str,
        plaintext: &[u8],
    ) -> Result<String, VaultError> {
        use base64::Engine;
        let sealed = self.seal(record_key, plaintext)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// Opens what [`Vault::seal_text`] wrote (or its version-1 form bound to
    /// `v1_reference`).
    pub(crate) fn open_text(
        &self,
        record_key: &str,
        v1_reference: &str,
        text: &str,
    ) -> Result<Vec<u8>, VaultError> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| VaultError::Refused)?;
        self.open_v1_as(record_key, v1_reference, &raw)
    }
}

fn v2_aad(record_key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(V2_LABEL.len() + record_key.len());
    aad.extend_from_slice(V2_LABEL);
    aad.extend_from_slice(record_key.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    /// Written by the previous `SecretBox::seal("sess:abc", b"old secret")`.
    const V1_SESSION: &str =
        "01ee673c3e9cfb479d8ebd538049ad8c0cd24a3bef3b9d0f9bf9d977ccdeff1afd3f290e292607";
    /// Written by the previous `SecretBox::seal("sec_1", br#"{"k":1}"#)`:
    /// a connection secret, bound to its bare reference.
    const V1_CONNECTION: &str =
        "0148b45c2869026003a4a5c2aed376ab892b7d644313379b5ccc33a787004a0409b55d28";

    fn vault() -> Vault {
        Vault::from_base64(KEY).unwrap()
    }

    #[test]
    fn round_trip() {
        let v = vault();
        let sealed = v.seal("sess:abc", b"hunter2").unwrap();
        assert_eq!(sealed[0], V2);
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(v.open("sess:abc", &sealed).unwrap(), b"hunter2");
        let text = v.seal_text("oauth:keys:k1", b"der").unwrap();
        assert_eq!(v.open_text("oauth:keys:k1", "-", &text).unwrap(), b"der");
        assert_ne!(
            v.seal("sess:abc", b"x").unwrap(),
            v.seal("sess:abc", b"x").unwrap(),
            "a fresh nonce per seal"
        );
    }

    #[test]
    fn a_blob_moved_to_another_key_does_not_open() {
        let v = vault();
        let sealed = v.seal("utok:conn_a:alice", b"token").unwrap();
        assert!(matches!(
            v.open("utok:conn_a:mallory", &sealed),
            Err(VaultError::Refused)
        ));
        // Nor by claiming an old binding for it.
        assert!(v
            .open_v1_as("utok:conn_a:mallory", "utok:conn_a:alice", &sealed)
            .is_err());
        let old = hex::decode(V1_SESSION).unwrap();
        assert!(v.open("sess:other", &old).is_err());
    }

    #[test]
    fn any_change_is_refused() {
        let v = vault();
        let sealed = v.seal("secret:r1", b"hunter2").unwrap();
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(v.open("secret:r1", &t).is_err(), "byte {i} flipped");
        }
        // A version-2 blob relabelled as version 1 does not open either.
        let mut relabelled = sealed.clone();
        relabelled[0] = V1;
        assert!(v.open("secret:r1", &relabelled).is_err());
        assert!(v.open("secret:r1", &sealed[..sealed.len() - 1]).is_err());
        assert!(v.open("secret:r1", &[]).is_err());
        let other = Vault::from_base64("ISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISE=").unwrap();
        assert!(other.open("secret:r1", &sealed).is_err(), "wrong key");
    }

    #[test]
    fn old_format_records_still_open() {
        let v = vault();
        let old = hex::decode(V1_SESSION).unwrap();
        assert_eq!(v.open("sess:abc", &old).unwrap(), b"old secret");
        let conn = hex::decode(V1_CONNECTION).unwrap();
        assert_eq!(
            v.open_v1_as("secret:sec_1", "sec_1", &conn).unwrap(),
            br#"{"k":1}"#
        );
        assert!(
            v.open("secret:sec_1", &conn).is_err(),
            "its old binding only"
        );
    }

    #[test]
    fn a_bad_key_is_refused() {
        assert!(matches!(
            Vault::from_base64("c2hvcnQ="),
            Err(VaultError::BadKey)
        ));
        assert!(Vault::from_base64("not base64!").is_err());
    }
}
