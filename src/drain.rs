//! Graceful stop and upgrade: which signal does what, and draining
//! keep-alive connections before they are closed.
//!
//! Pingora 0.9's own signal handling stops accepting and closes every idle
//! keep-alive connection the moment SIGTERM arrives (and 5 s after SIGQUIT).
//! A client that sends its next request on such a connection at that instant
//! gets a reset: its request is lost although the gateway was "graceful"
//! (HTTP/1.1 gives the client no safe way to retry a POST, RFC 9112 §9.3.1).
//! So the gateway drains first: from the signal on, every response carries
//! `Connection: close` (RFC 9112 §9.6: the server signals closure in its
//! last response on a connection), so busy clients move off this process
//! one answered request at a time, and `/readyz` answers 503 so load
//! balancers stop sending. Only then does Pingora close what is left:
//!
//! - SIGTERM: drain (still accepting) for `server.grace_period_seconds`,
//!   then stop accepting; in-flight requests get
//!   `server.graceful_shutdown_timeout_seconds`.
//! - SIGQUIT: graceful upgrade; the listening sockets go to the process
//!   started with `--upgrade` (over `server.upgrade_sock`), this one drains
//!   for Pingora's 5 s handover window, then stops as above. Without
//!   `server.upgrade_sock`, SIGQUIT stops like SIGTERM.
//! - SIGINT: fast shutdown.
//!
//! Draining is a property of the process (signals are), hence a static.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

static DRAINING: AtomicBool = AtomicBool::new(false);

/// Whether this process is shutting down or handing over (responses should
/// close their connection).
pub(crate) fn is_draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// The signal handling the server runs with (replaces Pingora's
/// `UnixShutdownSignalWatch`, adding the drain before a stop).
pub(crate) struct DrainingSignals {
    /// How long to drain after SIGTERM before the listeners close.
    pub(crate) grace: Duration,
    /// Whether `server.upgrade_sock` is set; without it SIGQUIT hands
    /// nothing over (Pingora would send the listeners to its default path
    /// in /tmp, which anyone on the host can create) and stops like SIGTERM.
    pub(crate) upgrades: bool,
}

#[async_trait]
impl ShutdownSignalWatch for DrainingSignals {
    async fn recv(&self) -> ShutdownSignal {
        // Registered before anything waits, as Pingora does; failure to
        // register is a broken platform, not a runtime condition.
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let stop = tokio::select! {
            _ = quit.recv() => {
                if self.upgrades {
                    DRAINING.store(true, Ordering::Relaxed);
                    tracing::info!("SIGQUIT: handing the listeners over and draining");
                    return ShutdownSignal::GracefulUpgrade;
                }
                tracing::warn!("SIGQUIT without server.upgrade_sock: stopping as for SIGTERM");
                "SIGQUIT"
            }
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => return ShutdownSignal::FastShutdown,
        };
        DRAINING.store(true, Ordering::Relaxed);
        tracing::info!(
            signal = stop,
            seconds = self.grace.as_secs(),
            "draining before closing the listeners"
        );
        tokio::select! {
            _ = tokio::time::sleep(self.grace) => ShutdownSignal::GracefulTerminate,
            _ = int.recv() => ShutdownSignal::FastShutdown,
        }
    }
}
