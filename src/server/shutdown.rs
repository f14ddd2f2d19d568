//! How the server stops: the signals, and the drain between the first one and the exit.
//!
//! - **SIGTERM** (systemd's, Docker's stop) or **SIGINT** (Ctrl-C): drain. The node refuses
//!   new work (`503`, [`crate::http::drain`]), its health check answers `503` so a load
//!   balancer takes it out, the background tasks stop (no new refresh or prefetch), and the
//!   transfers in progress go on — clients' responses and the downloads in flight, which are
//!   verified and published as usual — for at most `shutdown_grace`. The server stops as soon
//!   as no client connection is open and no download is in flight.
//! - A **second** SIGTERM/SIGINT, the end of `shutdown_grace`, or **SIGQUIT**: stop now. Open
//!   connections are cut (a client sees a short body and tries its next mirror); a download
//!   still in flight is dropped where it is: its partial file stays in `.partial/`, never at a
//!   final path, and is removed at the next start.
//!
//! `shutdown_grace = "0s"` stops at the first signal.

use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// How often the drain looks whether the last transfer has ended.
const POLL: Duration = Duration::from_millis(100);

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// SIGTERM or SIGINT.
    Drain(&'static str),
    /// SIGQUIT.
    Now,
}

/// The stop signals, registered before the server starts (so none takes the default action
/// of killing the process).
pub(super) struct Signals {
    term: Signal,
    int: Signal,
    quit: Signal,
}

impl Signals {
    /// Register SIGTERM, SIGINT and SIGQUIT. Must run on the runtime.
    pub(super) fn register() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// The next stop signal.
    pub(super) async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Drain("SIGTERM"),
            _ = self.int.recv() => Stop::Drain("SIGINT"),
            _ = self.quit.recv() => Stop::Now,
        }
    }
}

/// Wait for a stop signal, then drain (see the module doc); returns when the server must stop.
/// `background` is cancelled when the drain begins.
pub(super) async fn wait_and_drain(
    state: &AppState,
    signals: &mut Signals,
    background: &CancellationToken,
) {
    let which = match signals.next().await {
        Stop::Drain(which) => which,
        Stop::Now => {
            log::info!("SIGQUIT: stopping now");
            return;
        }
    };
    let grace = state.cfg.shutdown_grace;
    state.drain.start();
    background.cancel();
    log::info!(
        "{which}: draining: new requests are refused (503), the health check fails; {} \
         connection(s) and {} download(s) in flight get up to {} to finish (signal again to \
         stop now)",
        state.drain.connections(),
        state.registry.snapshot().len(),
        humantime::format_duration(grace)
    );
    let deadline = Instant::now() + grace;
    tokio::select! {
        () = all_done(state) => log::info!("drained: every transfer has ended"),
        () = tokio::time::sleep_until(deadline.into()) => log::warn!(
            "shutdown_grace ({}) is over: stopping with {} connection(s) and {} download(s) \
             in flight",
            humantime::format_duration(grace),
            state.drain.connections(),
            state.registry.snapshot().len()
        ),
        stop = signals.next() => log::warn!(
            "{}: stopping now, with {} connection(s) and {} download(s) in flight",
            match stop {
                Stop::Drain(which) => which,
                Stop::Now => "SIGQUIT",
            },
            state.drain.connections(),
            state.registry.snapshot().len()
        ),
    }
}

/// Resolves when no client connection is open and no download is in flight.
async fn all_done(state: &AppState) {
    while state.drain.connections() > 0 || !state.registry.snapshot().is_empty() {
        tokio::time::sleep(POLL).await;
    }
}
