//! Randomness for secrets and identifiers — codes, tokens, `state`, nonces,
//! ids — from the system CSPRNG through aws-lc-rs. A failure is returned,
//! never ignored: a code made of zero bytes would be guessable (RFC 6749
//! §10.10 requires codes and tokens an attacker cannot guess).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The system random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub(crate) struct RandomError;

/// `n` random bytes.
pub(crate) fn bytes(n: usize) -> Result<Vec<u8>, RandomError> {
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| RandomError)?;
    Ok(b)
}

/// `n` random bytes, base64url without padding (≥ 128 bits for n ≥ 16).
pub(crate) fn token(n: usize) -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(bytes(n)?))
}

/// An identifier with a type prefix (`app_…`, `auth_…`): 128 random bits, hex.
pub(crate) fn id(prefix: &str) -> Result<String, RandomError> {
    Ok(format!("{prefix}_{}", hex::encode(bytes(16)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_their_length_and_differ() {
        assert_eq!(token(32).unwrap().len(), 43);
        assert_ne!(token(16).unwrap(), token(16).unwrap());
        let id = id("app").unwrap();
        assert!(id.starts_with("app_") && id.len() == 36, "{id}");
    }
}
