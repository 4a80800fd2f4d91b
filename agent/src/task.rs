//! Signal and task helpers shared by every long-running command.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Ends a background task when dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, listened to from the start so that a
/// signal during probe loading still ends the command cleanly.
pub struct Stop {
    interrupt: Signal,
    terminate: Signal,
}

impl Stop {
    /// Starts listening for SIGINT and SIGTERM.
    pub fn listen() -> std::io::Result<Self> {
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves when a stop signal arrives.
    pub async fn requested(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
