//! A detector shared by the ring buffer's drain, which shows it every
//! event, and a ticker that sends the summaries of alerts held back (it
//! runs only while alerts are held); what either raises goes to the alert
//! queue.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Detector;
use super::sink::AlertSender;
use crate::capture::decode::Event;
use crate::task::AbortOnDrop;

/// How often held-back alerts are summed up.
const TICK: Duration = Duration::from_millis(250);

/// The shared detector and its alert queue (a cheap handle).
#[derive(Clone)]
pub struct SharedDetector {
    detector: Arc<Mutex<Detector>>,
    sender: AlertSender,
    /// Told when alerts start being held back.
    holding: Arc<Notify>,
}

impl SharedDetector {
    /// Shares `detector`, sending its alerts to `sender`.
    pub fn new(detector: Detector, sender: AlertSender) -> SharedDetector {
        SharedDetector {
            detector: Arc::new(Mutex::new(detector)),
            sender,
            holding: Arc::new(Notify::new()),
        }
    }

    /// The detector, locked (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, Detector> {
        self.detector.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks one event and queues what it raises.
    pub fn observe(&self, event: &Event) {
        let (alerts, holding) = {
            let mut detector = self.lock();
            let alerts = detector.observe(event, Instant::now());
            (alerts, detector.holding())
        };
        if holding {
            self.holding.notify_one();
        }
        for alert in alerts {
            self.sender.send(alert);
        }
    }

    /// Queues the summaries due at `now`.
    pub fn send_summaries(&self, now: Instant) {
        let due = self.lock().tick(now);
        for alert in due {
            self.sender.send(alert);
        }
    }

    /// Sends the summaries of held-back alerts as their seconds end, and
    /// the alerts of provisional containers once they can go, until the
    /// returned guard is dropped; asleep while nothing is held or waits.
    pub fn summarize(&self) -> AbortOnDrop {
        let shared = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                shared.holding.notified().await;
                loop {
                    tokio::time::sleep(TICK).await;
                    shared.send_summaries(Instant::now());
                    if !shared.lock().holding() {
                        break;
                    }
                }
            }
        }))
    }
}
