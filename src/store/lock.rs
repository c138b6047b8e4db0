//! Leases: a lock in the shared store that every instance sees, held by an
//! owner token so that only its holder can release it (compare-and-delete),
//! and renewed while the work runs so that work longer than the lease (a
//! slow identity provider) does not lose it.
//!
//! The pattern is Redis's single-instance lock (`SET key token NX PX`,
//! released by comparing the token first) on top of [`Store`]'s
//! `put_if_absent` and `compare_and_swap`, so it holds on both backends.
//! A lease only serialises work; data it protects is still written with
//! `compare_and_swap`, so a holder that lost its lease (a paused process)
//! cannot overwrite a newer state.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Store, StoreError};

/// Why a lease could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("the lease is held by another worker")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("randomness unavailable")]
    Random,
}

/// How long a lease lives without renewal, and how long to wait for one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseSettings {
    pub(crate) ttl: Duration,
    pub(crate) wait: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            wait: Duration::from_secs(5),
        }
    }
}

/// A held lease; released by [`Lease::release`] (or by expiry if the
/// holder dies).
pub(crate) struct Lease {
    store: Arc<dyn Store>,
    key: String,
    token: [u8; 16],
    ttl: Duration,
}

impl Lease {
    /// Takes the lease at `key`, polling until `settings.wait` has passed.
    pub(crate) async fn acquire(
        store: Arc<dyn Store>,
        key: &str,
        settings: LeaseSettings,
    ) -> Result<Lease, LockError> {
        let mut token = [0u8; 16];
        aws_lc_rs::rand::fill(&mut token).map_err(|_| LockError::Random)?;
        let deadline = tokio::time::Instant::now() + settings.wait;
        loop {
            if store.put_if_absent(key, &token, Some(settings.ttl)).await? {
                return Ok(Lease {
                    store,
                    key: key.to_string(),
                    token,
                    ttl: settings.ttl,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LockError::Busy);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Extends the lease if this holder still has it; false once it is lost.
    pub(crate) async fn renew(&self) -> Result<bool, StoreError> {
        self.store
            .compare_and_swap(
                &self.key,
                Some(&self.token),
                Some(&self.token),
                Some(self.ttl),
            )
            .await
    }

    /// Releases the lease if this holder still has it: never another's.
    pub(crate) async fn release(self) -> Result<bool, StoreError> {
        self.store
            .compare_and_swap(&self.key, Some(&self.token), None, None)
            .await
    }

    /// Runs `work` holding the lease, renewing it every third of its life,
    /// then releases it. Returns the work's output.
    pub(crate) async fn hold<T>(self, work: impl Future<Output = T>) -> T {
        let every = (self.ttl / 3).max(Duration::from_millis(10));
        tokio::pin!(work);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        let output = loop {
            tokio::select! {
                out = &mut work => break out,
                _ = tick.tick() => match self.renew().await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(lease = %self.key, "lease lost while working; the work's writes are fenced by compare-and-swap"),
                    Err(e) => tracing::warn!(lease = %self.key, error = %e, "lease renewal failed"),
                },
            }
        };
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "lease release failed; it expires by itself");
        }
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(&dir.path().join("s.redb")).unwrap();
        (dir, Arc::new(s))
    }

    // Long enough that a renewal (a store write with fsync) cannot miss
    // its window on a loaded machine: seen failing once at 150 ms.
    const SHORT: LeaseSettings = LeaseSettings {
        ttl: Duration::from_millis(400),
        wait: Duration::from_millis(0),
    };

    #[tokio::test]
    async fn work_longer_than_the_lease_keeps_it() {
        let (_dir, s) = store();
        let first = Lease::acquire(s.clone(), "lock:x", SHORT).await.unwrap();
        let s2 = s.clone();
        let held = first.hold(async move {
            // Three lease lifetimes of work: without renewal another worker
            // would get in.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            Lease::acquire(s2, "lock:x", SHORT).await.map(|_| ())
        });
        assert!(matches!(held.await, Err(LockError::Busy)));
        // Released at the end: free for the next.
        assert!(Lease::acquire(s, "lock:x", SHORT).await.is_ok());
    }

    #[tokio::test]
    async fn a_holder_that_lost_its_lease_never_releases_anothers() {
        let (_dir, s) = store();
        let stale = Lease::acquire(s.clone(), "lock:y", SHORT).await.unwrap();
        tokio::time::sleep(Duration::from_millis(550)).await; // expired, not renewed
        let current = Lease::acquire(s.clone(), "lock:y", SHORT).await.unwrap();
        assert!(
            !stale.renew().await.unwrap(),
            "the stale holder cannot extend"
        );
        assert!(
            !stale.release().await.unwrap(),
            "nor delete the new holder's lease"
        );
        assert!(matches!(
            Lease::acquire(s.clone(), "lock:y", SHORT).await,
            Err(LockError::Busy)
        ));
        assert!(current.release().await.unwrap());
    }
}
