//! The signals that stop a sidecar or a served app.

/// Completes on Ctrl-C or, on Unix, SIGTERM (how `dapr stop`, systemd and
/// container runtimes ask a process to stop).
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
