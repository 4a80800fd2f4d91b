//! Draining the ring buffer on a task of its own, so that nothing a
//! consumer awaits (an API call, a file write) holds back the kernel's
//! events: each record is decoded, shown to the consumer's observer, and
//! folded into the shared [`Captured`] state.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, trace, warn};

use crate::capture::aggregate::Aggregator;
use crate::capture::decode::{Event, decode};
use crate::task::AbortOnDrop;

/// How long events of a cgroup can still be in the ring buffer after the
/// kernel stopped recording it.
const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(60);

/// Sees every decoded event before it is aggregated (metrics, detection).
pub type Observer = Box<dyn FnMut(&Event) + Send>;

/// What the drain task has gathered, shared with the session's consumer.
#[derive(Debug, Default)]
pub struct Captured {
    /// Behavior per cgroup, cgroup paths and parents announced by the kernel.
    pub aggregator: Aggregator,
    /// Cgroups with events since the consumer last took them ([`Captured::take_changed`]).
    pub changed: HashSet<u64>,
    /// Cgroups the kernel removed, and when the removal was drained.
    pub removed: HashMap<u64, Instant>,
    /// Cgroups no longer recorded, and since when: events of theirs still
    /// in the ring buffer are dropped.
    ignored: HashMap<u64, Instant>,
}

impl Captured {
    /// Folds one decoded event in.
    fn add(&mut self, event: &Event) {
        let id = event.header().cgroup_id;
        if self.ignored.contains_key(&id) {
            // Sent before the kernel was told to stop.
            return;
        }
        match event {
            Event::CgroupRemoved { .. } => {
                self.removed.insert(id, Instant::now());
            }
            Event::CgroupMade { .. } => {}
            _ => {
                self.changed.insert(id);
            }
        }
        self.aggregator.add(event);
    }

    /// Drops what is still in flight of a cgroup the kernel no longer
    /// records (what was kept of it is [`Captured::forget`]'s). What was in
    /// flight has been drained a minute later.
    pub fn ignore(&mut self, id: u64) {
        let now = Instant::now();
        self.ignored
            .retain(|_, since| now.duration_since(*since) < IN_FLIGHT);
        self.ignored.insert(id, now);
    }

    /// Drops everything kept about a cgroup.
    pub fn forget(&mut self, id: u64) {
        self.aggregator.cgroups.remove(&id);
        self.aggregator.paths.remove(&id);
        self.aggregator.parents.remove(&id);
        self.changed.remove(&id);
        self.removed.remove(&id);
    }
}

/// The drain task and the way to ask it to drain right now.
pub struct Drain {
    captured: Arc<Mutex<Captured>>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    _task: AbortOnDrop,
}

impl Drain {
    /// Starts draining `ring` into a fresh [`Captured`].
    pub fn start(ring: AsyncFd<RingBuf<MapData>>, observer: Option<Observer>) -> Drain {
        let captured = Arc::new(Mutex::new(Captured::default()));
        let (flushes, requests) = mpsc::channel(4);
        let task = tokio::spawn(run(ring, captured.clone(), observer, requests));
        Drain {
            captured,
            flushes,
            _task: AbortOnDrop(task),
        }
    }

    /// The captured state, locked (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, Captured> {
        self.captured
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drains whatever the ring buffer holds now, and returns once it is in.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.flushes.send(done).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(
    mut ring: AsyncFd<RingBuf<MapData>>,
    captured: Arc<Mutex<Captured>>,
    mut observer: Option<Observer>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
) {
    loop {
        tokio::select! {
            guard = ring.readable_mut() => match guard {
                Ok(mut guard) => {
                    drain(guard.get_inner_mut(), &captured, &mut observer);
                    guard.clear_ready();
                }
                Err(e) => {
                    error!(error = %e, "the ring buffer cannot be read any more: recording stopped");
                    return;
                }
            },
            Some(done) = flushes.recv() => {
                drain(ring.get_mut(), &captured, &mut observer);
                let _ = done.send(());
            }
        }
    }
}

/// Reads every pending record; returns how many.
fn drain(
    ring: &mut RingBuf<MapData>,
    captured: &Mutex<Captured>,
    observer: &mut Option<Observer>,
) -> usize {
    let mut captured = captured
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut n = 0;
    while let Some(item) = ring.next() {
        n += 1;
        match decode(&item) {
            Ok(event) => {
                trace!(?event, "event");
                if let Some(observe) = observer.as_mut() {
                    observe(&event);
                }
                captured.add(&event);
            }
            Err(error) => {
                captured.aggregator.decode_errors += 1;
                warn!(%error, "undecodable event");
            }
        }
    }
    n
}
