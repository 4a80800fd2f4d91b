//! Where alerts go on a host: one JSON object per line, on standard output
//! or appended to a file, written by a task of its own so that detection
//! (on the ring buffer's drain) never waits for a slow reader.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::alert::Alert;

/// Alerts queued for the writer at most; past it they are counted as lost.
pub const QUEUE: usize = 4096;

/// The sending half: never blocks.
#[derive(Clone)]
pub struct AlertSender {
    queue: mpsc::Sender<Alert>,
    lost: Arc<AtomicU64>,
}

impl AlertSender {
    /// Queues an alert; a full queue counts it as lost.
    pub fn send(&self, alert: Alert) {
        if self.queue.try_send(alert).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Alerts lost to a full queue.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// The writer task: ends once every sender is gone and the queue is
/// written out.
pub struct AlertWriter {
    task: tokio::task::JoinHandle<std::io::Result<u64>>,
}

impl AlertWriter {
    /// Waits for the writer; the number of lines written.
    pub async fn finish(self) -> std::io::Result<u64> {
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// A queue of alerts: the sender detection uses, the receiver an output
/// task drains.
pub fn queue() -> (AlertSender, mpsc::Receiver<Alert>) {
    let (queue, alerts) = mpsc::channel::<Alert>(QUEUE);
    (
        AlertSender {
            queue,
            lost: Arc::default(),
        },
        alerts,
    )
}

/// Starts writing JSON lines to `output` (standard output when `None`).
pub fn start(output: Option<PathBuf>) -> std::io::Result<(AlertSender, AlertWriter)> {
    let mut out: Box<dyn Write + Send> = match &output {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let (sender, mut alerts) = queue();
    let task = tokio::task::spawn_blocking(move || {
        let mut written = 0;
        while let Some(alert) = alerts.blocking_recv() {
            let line = serde_json::to_string(&alert).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
            out.flush()?;
            written += 1;
        }
        Ok(written)
    });
    Ok((sender, AlertWriter { task }))
}
