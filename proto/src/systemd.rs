//! Telling systemd how a daemon is doing (sd_notify): ready, stopping, and
//! alive for the watchdog. Outside systemd, with no `NOTIFY_SOCKET`, each
//! call does nothing.
//!
//! The environment is left as it is, because changing it in a threaded
//! process is unsound. Commands never see it, since each sandbox starts
//! with a clean environment.

use std::time::Duration;

use sd_notify::NotifyState;

/// Reports that the daemon serves, with a one-line status for
/// `systemctl status`.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the one-line status `systemctl status` shows.
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// Reports that the daemon is shutting down.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Starts pinging the watchdog at half its period when the unit sets
/// `WatchdogSec=`. The pings run on the async runtime, so a stuck runtime
/// misses them and systemd restarts the daemon.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let period = Duration::from_micros(usec) / 2;
    tracing::info!(
        period_ms = period.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    }))
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::warn!(error = %error, "failed to notify systemd");
    }
}
