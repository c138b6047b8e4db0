//! The gateway's wall clock, injectable (issue 14, layout.md: "util/ —
//! clock (injectable)").
//!
//! Token lifetimes (`exp`, RFC 7519 §4.1.4), refresh-token grace windows
//! (RFC 9700 §4.14.2), upstream token expiry and record timestamps are all
//! whole Unix seconds read from a [`Clock`]. Production uses
//! [`Clock::system`]; tests use [`Clock::manual`] and [`Clock::advance`], so
//! a TTL or grace-window test moves time forward instead of waiting.
//!
//! Store TTLs (Redis `PX`, the embedded store's sweep) and timeouts stay on
//! the real clock: they are enforced by the backend or by tokio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A cheap, cloneable handle to "now".
#[derive(Clone, Default)]
pub(crate) struct Clock(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    /// Milliseconds since the Unix epoch, moved only by [`Clock::advance`];
    /// shared by every clone.
    #[cfg_attr(not(test), allow(dead_code))] // only unit tests advance time
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The system's wall clock.
    pub(crate) fn system() -> Self {
        Self(Source::System)
    }

    /// A clock standing still at `unix_secs` until advanced (tests).
    #[cfg(test)]
    pub(crate) fn manual(unix_secs: u64) -> Self {
        Self(Source::Manual(Arc::new(AtomicU64::new(
            unix_secs.saturating_mul(1000),
        ))))
    }

    /// Whole seconds since the Unix epoch (0 if the system clock is set
    /// before 1970, which every expiry then treats as long past).
    pub(crate) fn now_secs(&self) -> u64 {
        self.now_millis() / 1000
    }

    pub(crate) fn now_millis(&self) -> u64 {
        match &self.0 {
            Source::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            Source::Manual(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved, and
    /// asking is a bug in the test.
    #[cfg(test)]
    pub(crate) fn advance(&self, by: std::time::Duration) {
        match &self.0 {
            Source::System => panic!("advance() on the system clock"),
            Source::Manual(ms) => {
                let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
                ms.fetch_add(by, Ordering::SeqCst);
            }
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::System"),
            Source::Manual(_) => write!(f, "Clock::Manual({})", self.now_millis()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let c = Clock::manual(1_000);
        let shared = c.clone();
        assert_eq!(c.now_secs(), 1_000);
        c.advance(std::time::Duration::from_millis(1_500));
        assert_eq!(shared.now_secs(), 1_001);
        assert_eq!(shared.now_millis(), 1_001_500);
    }

    #[test]
    fn the_system_clock_is_now() {
        let sys = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(Clock::system().now_secs().abs_diff(sys) <= 1);
    }
}
