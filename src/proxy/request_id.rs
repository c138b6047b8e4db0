//! `X-Request-Id`: kept when the client sent a sane one (so traces join up
//! across systems), generated otherwise, and echoed on every response.

/// Longest client-supplied id we keep.
const MAX_LEN: usize = 128;

pub fn from_client_or_new(header: Option<&[u8]>) -> String {
    match header {
        Some(v) if is_sane(v) => String::from_utf8_lossy(v).into_owned(),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// Printable token characters only: the id goes into logs and headers.
fn is_sane(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_LEN
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        assert_eq!(from_client_or_new(Some(b"abc-123")), "abc-123");
        assert_eq!(from_client_or_new(None).len(), 36);
        assert_ne!(from_client_or_new(Some(b"bad id\r\n")), "bad id\r\n");
        assert_eq!(from_client_or_new(Some(&[b'a'; 200])).len(), 36);
    }
}
