//! The one owner of route-table rebuilds.
//!
//! Every reason to rebuild (a catalog write here, another instance's
//! broadcast on [`super::CHANGES_CHANNEL`], the periodic DNS refresh) only
//! asks for one: it bumps the *requested* generation. A single task builds
//! tables one after another and publishes the generation each covers, so:
//! - rebuilds never run concurrently, and a table built from an older read
//!   of the store can never replace a newer one (only this task stores);
//! - many requests during one build coalesce into one next build, which
//!   covers them all (it reads the store after they were made);
//! - a writer can wait until the live table covers its write, instead of
//!   rebuilding inside its own request.
//!
//! Generations are counted per process; they are not shared between
//! instances (each instance rebuilds from the shared store on a broadcast).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::catalog::route::UpstreamDns;
use crate::store::Store;

/// How long a failed rebuild waits before it is tried again. Requests keep
/// the current table meanwhile.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Generation counters shared by the requesters and the rebuild task.
pub(crate) struct Reloader {
    /// The newest generation asked for. A requester bumps it *after* its
    /// store write, and the task reads it *before* reading the store: a
    /// build for generation g therefore sees every write requested at ≤ g.
    requested: watch::Sender<u64>,
    /// The generation of the table requests currently read.
    live: watch::Sender<u64>,
    /// Upstream lookups shared by consecutive rebuilds.
    dns: UpstreamDns,
}

impl Default for Reloader {
    fn default() -> Self {
        Self {
            requested: watch::Sender::new(0),
            live: watch::Sender::new(0),
            dns: UpstreamDns::default(),
        }
    }
}

impl Reloader {
    /// The upstream resolver rebuilds use.
    pub(crate) fn dns(&self) -> &UpstreamDns {
        &self.dns
    }

    /// Asks for a rebuild covering everything written so far; returns the
    /// generation that will.
    pub(crate) fn request(&self) -> u64 {
        let mut generation = 0;
        self.requested.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        generation
    }

    /// The generation of the live table.
    pub(crate) fn live(&self) -> u64 {
        *self.live.borrow()
    }

    /// Waits (at most `limit`) until the live table covers `generation`.
    /// False on timeout: the write is stored and will be routed by a later
    /// rebuild, but not yet.
    pub(crate) async fn wait_for(&self, generation: u64, limit: Duration) -> bool {
        let mut live = self.live.subscribe();
        let reached = tokio::time::timeout(limit, live.wait_for(|g| *g >= generation))
            .await
            .is_ok_and(|r| r.is_ok());
        reached
    }

    /// The rebuild loop; runs for the life of the process. `build` reads the
    /// store, builds a table and makes it live; on error the live table is
    /// kept and the build is tried again after [`RETRY_AFTER`].
    pub(crate) async fn run<F, Fut, E>(&self, mut build: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: Display,
    {
        let mut wanted = self.requested.subscribe();
        loop {
            let target = *wanted.borrow_and_update();
            if target > self.live() {
                match build().await {
                    Ok(()) => {
                        self.live.send_modify(|g| *g = (*g).max(target));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "route rebuild failed; keeping the current routes");
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
                continue;
            }
            if wanted.changed().await.is_err() {
                return;
            }
        }
    }
}

/// How long a catalog write waits for the routes to cover it.
const WRITE_WAIT: Duration = Duration::from_secs(5);

/// The narrow handle a catalog writer (the management API) holds to
/// announce its write: this instance's reloader, the change channel, and
/// the instance's name on it. Lent per request by `State`.
pub(crate) struct Changes<'a> {
    pub(crate) reloader: &'a Reloader,
    pub(crate) store: &'a dyn Store,
    /// This process's name on [`super::CHANGES_CHANNEL`], so it can skip its
    /// own broadcasts (its writes have already asked for a rebuild).
    pub(crate) instance: &'a str,
}

impl Changes<'_> {
    /// Called after a catalog write is stored: asks for a rebuild, tells
    /// every other instance, and waits (bounded) until this instance's live
    /// table covers the write, so the writer's next request routes by it.
    pub(crate) async fn announce(&self) {
        let generation = self.reloader.request();
        if let Err(e) = self
            .store
            .publish(super::CHANGES_CHANNEL, self.instance.as_bytes())
            .await
        {
            tracing::warn!(error = %e, "could not broadcast a catalog change");
        }
        if !self.reloader.wait_for(generation, WRITE_WAIT).await {
            tracing::warn!(
                generation,
                "routes not rebuilt in time after a catalog change; the change applies at the next rebuild"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn requests_made_during_a_build_coalesce_into_one_more_build() {
        let reloader = Arc::new(Reloader::default());
        let builds = Arc::new(AtomicUsize::new(0));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let task = {
            let (reloader, builds) = (reloader.clone(), builds.clone());
            tokio::spawn(async move {
                reloader
                    .run(|| {
                        let (builds, mut gate) = (builds.clone(), gate_rx.clone());
                        async move {
                            builds.fetch_add(1, Ordering::SeqCst);
                            // The first build holds until the test opens the gate.
                            gate.wait_for(|open| *open).await.map(|_| ())
                        }
                    })
                    .await
            })
        };
        let first = reloader.request();
        while builds.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Ten more writes while the first build runs.
        let last = (0..10).map(|_| reloader.request()).max().unwrap();
        gate_tx.send_replace(true);
        assert!(reloader.wait_for(first, Duration::from_secs(5)).await);
        assert!(reloader.wait_for(last, Duration::from_secs(5)).await);
        assert_eq!(reloader.live(), last);
        assert_eq!(
            builds.load(Ordering::SeqCst),
            2,
            "one build, then one for all ten"
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_writer_gives_up_waiting_when_no_build_runs() {
        let reloader = Reloader::default();
        let g = reloader.request();
        assert!(!reloader.wait_for(g, Duration::from_millis(10)).await);
        assert_eq!(reloader.live(), 0);
    }
}
