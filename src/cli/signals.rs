//! Signals, in one place: SIGINT (Ctrl-C) and SIGTERM.
//!
//! - [`shutdown`]: a future that resolves on the first SIGINT or SIGTERM (`cloud serve`,
//!   `logs --follow`).
//! - [`interrupt`]: a future that resolves on Ctrl-C (SIGINT) only; `apply` stops starting
//!   changes on it and lets the calls in flight finish.
//! - [`graceful_then_exit`]: the daemon's pair (`watch`): the first signal asks for a graceful
//!   shutdown, a second one ends the process at once with [`ExitStatus::Interrupted`].
//!
//! Handlers are installed when these functions are called, not when the future is first
//! polled: a signal that arrives between installing and waiting is not lost. Elsewhere than
//! on Unix, only Ctrl-C exists.

use super::output::ExitStatus;
use anyhow::Context;
use std::future::Future;

/// SIGINT and SIGTERM, listened for from the moment of [`Signals::install`].
pub struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening for SIGINT and SIGTERM (needs a running tokio runtime).
    pub fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
                term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for the next signal and names it (`SIGINT` or `SIGTERM`).
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.int.recv() => "SIGINT",
                _ = self.term.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM after this call.
pub fn shutdown() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let mut signals = Signals::install()?;
    Ok(async move {
        signals.recv().await;
    })
}

/// Resolves on the first Ctrl-C (SIGINT) after the future is first polled; never, if the
/// handler cannot be installed.
pub async fn interrupt() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The returned receiver turns `true` on the first SIGINT or SIGTERM; a second one exits the
/// process at once with status 130, for when draining takes too long. Both are logged.
pub fn graceful_then_exit() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut signals = Signals::install()?;
    tokio::spawn(async move {
        let first = signals.recv().await;
        tracing::info!(
            signal = first,
            "signal received: shutting down gracefully (send it again to exit now)"
        );
        let _ = tx.send(true);
        let second = signals.recv().await;
        tracing::warn!(
            signal = second,
            "second signal: exiting without waiting for calls in flight"
        );
        ExitStatus::Interrupted.exit_now();
    });
    Ok(rx)
}
