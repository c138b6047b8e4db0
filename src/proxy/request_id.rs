//! `X-Request-Id`: kept when the client sent a sane one (so traces join up
//! across systems), generated otherwise, and echoed on every response.
//!
//! Generated ids are UUID-shaped (RFC 9562 version 4 layout, 36 characters)
//! but come from a per-thread generator seeded once from the OS, not from a
//! `getrandom` call per request (one syscall saved on every request). An id
//! is a correlation handle, never a secret: it grants nothing, is echoed to
//! the client and written to logs, so it needs to be unique and not trivially
//! guessable across instances, not cryptographically unpredictable. Each
//! thread mixes a random 128-bit seed with a counter through SplitMix64
//! (distinct counters give distinct ids within a thread; different seeds keep
//! threads and processes apart).

use std::cell::Cell;

/// Longest client-supplied id we keep.
const MAX_LEN: usize = 128;

pub(crate) fn from_client_or_new(header: Option<&[u8]>) -> String {
    match header {
        Some(v) if is_sane(v) => String::from_utf8_lossy(v).into_owned(),
        _ => new_id(),
    }
}

thread_local! {
    /// (seed high, seed low, counter) of this thread's generator.
    static GENERATOR: Cell<(u64, u64, u64)> = Cell::new({
        let seed = uuid::Uuid::new_v4().as_u128();
        ((seed >> 64) as u64, seed as u64, 0)
    });
}

/// SplitMix64's finaliser: a bijection on u64 with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fresh UUID-shaped id without a syscall.
pub(crate) fn new_id() -> String {
    let (hi, lo) = GENERATOR.with(|g| {
        let (a, b, n) = g.get();
        let n = n.wrapping_add(1);
        g.set((a, b, n));
        let x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mix(a ^ x), mix(b.wrapping_add(x) ^ 0x5851_f42d_4c95_7f2d))
    });
    let bits = (u128::from(hi) << 64) | u128::from(lo);
    // uuid's builder sets version 4 and the RFC 9562 variant (so the id
    // parses as a UUID where one is expected); its encoder writes the 36
    // characters into a stack buffer: one allocation (the `String`), no
    // formatting machinery.
    let mut buf = uuid::Uuid::encode_buffer();
    uuid::Builder::from_random_bytes(bits.to_be_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
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

    #[test]
    fn generated_ids_are_distinct_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        let other = std::thread::spawn(new_id).join().unwrap();
        assert!(!ids.contains(&other));
    }
}
