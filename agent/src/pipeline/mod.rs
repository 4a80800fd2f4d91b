//! The recording session every command composes: load and attach the
//! probes (with feature detection), drain the ring buffer on a task of its
//! own, decode and aggregate with the kernel's drops folded in, map cgroup
//! ids to paths, name containers through the runtime, and say at the end
//! what was lost. `record` is a session plus a file sink, `agent` a session
//! plus a publisher.

pub mod drain;
pub mod own_cgroup;
pub mod placement;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::MutexGuard;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aya::maps::{MapData, RingBuf};
use imprint_crd::report::{ContainerBehaviorReportSpec, NodeLosses};
use tokio::io::unix::AsyncFd;
use tracing::{info, warn};

use self::drain::{Captured, Drain, Observer};
use crate::capture::aggregate::Behavior;
use crate::cgroups::Hierarchy;
use crate::probes::ProcessTable;
use crate::probes::{CapabilityHook, KernelCounts, ProbeConfig, Probes};
use crate::runtime::{self, Containers, Filter, RuntimeApi};
use crate::task::AbortOnDrop;

/// Most cgroups read in one scan of the hierarchy.
const SCAN_LIMIT: usize = 100_000;

/// What every recording command shares: the hooks, the runtime, the filter.
#[derive(Clone, Debug, Default)]
pub struct RecordingOptions {
    /// Which hook sees capability checks.
    pub capability_hook: CapabilityHook,
    /// Runtime sockets naming containers, each followed (empty: every
    /// default socket that exists).
    pub runtime_sockets: Vec<PathBuf>,
    /// Which API names containers.
    pub runtime_api: RuntimeApi,
    /// Which cgroups get a report.
    pub filter: Filter,
    /// Root of the cgroup v2 hierarchy (`None`: the mounted one).
    pub cgroup_root: Option<PathBuf>,
    /// Keep the kernel's process table (for alerts' ancestry), handed to
    /// this handle once the probes are loaded (`None`: not kept).
    pub track_processes: Option<ProcessTable>,
}

/// Which cgroups the probes record.
pub enum Scope {
    /// One cgroup (directory, id) and every cgroup made below it; no
    /// runtime is followed.
    Cgroup(PathBuf, u64),
    /// Every cgroup but these (imprint's own); containers are named
    /// through the runtime.
    All(Vec<(PathBuf, u64)>),
}

/// A running recording.
pub struct Session {
    /// The loaded probes (drop counters, unavailable hooks).
    pub probes: Probes,
    /// Containers named by the runtime (empty for [`Scope::Cgroup`]).
    pub containers: Containers,
    /// The runtime sockets followed (none for [`Scope::Cgroup`]).
    pub runtime_sockets: Vec<PathBuf>,
    drain: Drain,
    /// Cgroup paths found by scanning the hierarchy.
    scanned: HashMap<u64, String>,
    /// Cgroups that existed before recording began: their start (the
    /// runtime's start-up syscalls) was not seen.
    preexisting: HashSet<u64>,
    /// When recording began (boot-time nanoseconds).
    pub started_ns: u64,
    _followers: Vec<AbortOnDrop>,
}

impl Session {
    /// Loads the probes for `scope`, starts following the runtime (for
    /// [`Scope::All`]) and draining the ring buffer; `observer` sees every
    /// event as it is decoded.
    pub fn start(
        options: &RecordingOptions,
        hierarchy: &Hierarchy,
        scope: Scope,
        observer: Option<Observer>,
    ) -> Result<Session> {
        Session::start_naming(options, hierarchy, scope, observer, Containers::default())
    }

    /// [`Session::start`], naming containers into `containers` (shared
    /// with an observer that names them too).
    pub fn start_naming(
        options: &RecordingOptions,
        hierarchy: &Hierarchy,
        scope: Scope,
        observer: Option<Observer>,
        containers: Containers,
    ) -> Result<Session> {
        let (record_all, ignore, only) = match scope {
            Scope::Cgroup(dir, id) => (false, Vec::new(), Some((dir, id))),
            Scope::All(ignore) => (true, ignore, None),
        };
        let mut probes = Probes::load(
            &ProbeConfig {
                record_all,
                capability_hook: options.capability_hook,
                ignore,
                track_processes: options.track_processes.is_some(),
            },
            hierarchy.root(),
        )?;
        if let Some((dir, id)) = &only {
            probes.record_cgroup(dir, *id)?;
        }
        if let Some(table) = &options.track_processes
            && let Some(kernel) = probes.take_processes()
        {
            table.fill(kernel);
        }
        crate::probes::release_load_memory();
        let runtime_sockets = match (record_all, options.runtime_sockets.is_empty()) {
            (false, _) => Vec::new(),
            (true, true) => runtime::default_sockets(),
            (true, false) => options.runtime_sockets.clone(),
        };
        let followers = runtime_sockets
            .iter()
            .map(|socket| {
                AbortOnDrop(tokio::spawn(runtime::follow(
                    socket.clone(),
                    options.runtime_api,
                    containers.clone(),
                )))
            })
            .collect();
        let scanned = if record_all {
            hierarchy.scan(SCAN_LIMIT)
        } else {
            HashMap::new()
        };
        let ring = watch(probes.take_events()?)?;
        // The probes were attached before the scan: a cgroup the scan finds
        // was made before them, or in the moment between (counted as
        // unobserved, the safe side).
        let preexisting = scanned.keys().copied().collect();
        Ok(Session {
            probes,
            containers,
            runtime_sockets,
            drain: Drain::start(ring, observer),
            scanned,
            preexisting,
            started_ns: crate::report::boot_ns(),
            _followers: followers,
        })
    }

    /// What was captured so far, locked (never hold it across an await).
    pub fn captured(&self) -> MutexGuard<'_, Captured> {
        self.drain.lock()
    }

    /// Drains what the ring buffer holds now.
    pub async fn flush(&self) {
        self.drain.flush().await;
    }

    /// Reads what is still in flight once the recorded work has stopped.
    pub async fn finish(&self) {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            self.flush().await;
        }
    }

    /// The behavior of cgroup `id` with what the kernel counted of it
    /// (drops, exec repeats; `counts` from one [`Probes::kernel_counts`]
    /// read) folded in; `None` when nothing was seen of it and nothing of
    /// it was lost.
    pub fn behavior_of(&self, id: u64, counts: &KernelCounts) -> Option<Behavior> {
        with_counts(self.captured().aggregator.cgroups.get(&id), id, counts)
    }

    /// Events seen of cgroup `id` (0 when none).
    pub fn events_of(&self, id: u64) -> u64 {
        self.captured()
            .aggregator
            .cgroups
            .get(&id)
            .map_or(0, |b| b.events)
    }

    /// The path of each of `ids` that is known, from the kernel's
    /// announcements or a scan of `hierarchy` (scanned again when one is
    /// missing).
    pub fn paths(&mut self, hierarchy: &Hierarchy, ids: &[u64]) -> HashMap<u64, String> {
        let lookup = |session: &Session| {
            let captured = session.captured();
            ids.iter()
                .filter_map(|id| {
                    captured
                        .aggregator
                        .paths
                        .get(id)
                        .or_else(|| session.scanned.get(id))
                        .map(|path| (*id, path.clone()))
                })
                .collect::<HashMap<_, _>>()
        };
        let found = lookup(self);
        if found.len() == ids.len() {
            return found;
        }
        self.scanned.extend(hierarchy.scan(SCAN_LIMIT));
        lookup(self)
    }

    /// Drops everything kept about cgroup `id` (its report was written
    /// after it went), its kernel loss counters included.
    pub fn forget(&mut self, id: u64) {
        self.captured().forget(id);
        self.scanned.remove(&id);
        self.preexisting.remove(&id);
        self.probes.forget_drops(id);
    }

    /// Stops recording cgroup `id` (at `path`), whose behavior no report
    /// takes (host processes, imprint's own pod, a pod sandbox): the kernel
    /// sends nothing more of it, so it cannot crowd the ring buffer, and
    /// what it did is dropped. An error when the cgroup is already gone
    /// (nothing more can come of it then either).
    pub fn stop_recording(
        &mut self,
        hierarchy: &Hierarchy,
        id: u64,
        path: &str,
    ) -> Result<(), crate::probes::ProbeError> {
        self.forget(id);
        self.captured().ignore(id);
        self.probes.ignore_cgroup(&hierarchy.dir(path), id)
    }

    /// Whether cgroup `id` existed before recording began.
    pub fn preexisting(&self, id: u64) -> bool {
        self.preexisting.contains(&id)
    }

    /// The hooks not attached, each with what reports lack without it.
    pub fn missing_hooks(&self) -> Vec<String> {
        self.probes
            .unavailable
            .iter()
            .map(|m| format!("{}: {}", m.hook, m.lost))
            .collect()
    }

    /// Losses so far that no cgroup could be charged with (kernel
    /// counters, read now).
    pub fn node_losses(&self) -> NodeLosses {
        use imprint_probes::events::counter;
        let counters = self.probes.counters();
        let c = |i: usize| counters.values[i];
        NodeLosses {
            unattributed_drops: c(counter::DROPS_UNATTRIBUTED),
            storage_failures: c(counter::STORAGE_FAILS),
            syscalls_out_of_range: c(counter::SYSCALL_OUT_OF_RANGE),
        }
    }

    /// Cgroups the kernel ignores because they are outside the hierarchy
    /// this session sees (recording every cgroup from a cgroup namespace).
    pub fn cgroups_out_of_view(&self) -> u64 {
        use imprint_probes::events::counter;
        self.probes.counters().values[counter::OUT_OF_VIEW]
    }

    /// Says in `spec` what this session could not see: hooks that are
    /// missing, and node-wide losses since `baseline`.
    pub fn annotate(
        &self,
        spec: &mut ContainerBehaviorReportSpec,
        losses: &NodeLosses,
        baseline: &NodeLosses,
    ) {
        spec.stats.missing_hooks = self.missing_hooks();
        spec.stats.node_losses = losses.since(baseline);
    }

    /// Whether the start of the container whose cgroups are `ids` (its own
    /// and the children it made, folded into one report) was observed:
    /// none of them existed before recording began.
    pub fn start_observed(&self, ids: &[u64]) -> Option<bool> {
        Some(!ids.iter().any(|id| self.preexisting(*id)))
    }

    /// Says what was lost: kernel drop counters and undecodable records
    /// (a warning), and every hook that was not available.
    pub fn report_degradation(&self) {
        use imprint_probes::events::counter;
        let decode_errors = self.captured().aggregator.decode_errors;
        let counters = self.probes.counters();
        let c = |i: usize| counters.values[i];
        if c(counter::RINGBUF_DROPS)
            + c(counter::MAP_FULL)
            + c(counter::STORAGE_FAILS)
            + c(counter::DROPS_UNATTRIBUTED)
            + c(counter::SYSCALL_OUT_OF_RANGE)
            + decode_errors
            > 0
        {
            warn!(
                ring_buffer_drops = c(counter::RINGBUF_DROPS),
                map_full = c(counter::MAP_FULL),
                storage_failures = c(counter::STORAGE_FAILS),
                unattributed_drops = c(counter::DROPS_UNATTRIBUTED),
                syscalls_out_of_range = c(counter::SYSCALL_OUT_OF_RANGE),
                decode_errors,
                "events were lost; the reports count them per cgroup, and those no cgroup could be charged with in every report (stats.nodeLosses)"
            );
        }
        info!(
            hooks = self.probes.attached.len(),
            unavailable = self.probes.unavailable.len(),
            "recording ended"
        );
        let out_of_view = c(counter::OUT_OF_VIEW);
        if out_of_view > 0 {
            eprintln!(
                "left out: {out_of_view} cgroups outside the cgroup hierarchy seen here (another cgroup namespace's), ignored from their first syscall on"
            );
        }
        for missing in &self.probes.unavailable {
            eprintln!(
                "not recorded: {} ({} unavailable: {})",
                missing.lost, missing.hook, missing.error
            );
        }
    }
}

/// Registers the ring buffer with the runtime, to wake when events arrive.
pub fn watch(ring: RingBuf<MapData>) -> Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the ring buffer owns its map fd, which stays open and the same
    // for as long as the RingBuf (and so the AsyncFd) lives.
    unsafe { AsyncFd::register(ring) }.context("watching the ring buffer")
}

/// This machine's host name (the `node` of standalone reports).
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Fails early with a clear message when `command` is not run as root.
pub fn require_root(command: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "imprint {command} needs root (CAP_BPF, CAP_PERFMON and write access to the cgroup hierarchy)"
        );
    }
    Ok(())
}

/// `seen` (what was decoded of cgroup `id`) with what the kernel counted
/// of it; a cgroup of which every event was lost is its losses alone, so
/// its report says what was lost.
fn with_counts(seen: Option<&Behavior>, id: u64, counts: &KernelCounts) -> Option<Behavior> {
    let mut behavior = match seen {
        Some(seen) => seen.clone(),
        None if counts.drops.get(&id).is_some_and(|d| d.total() > 0) => Behavior::default(),
        None => return None,
    };
    counts.apply(id, &mut behavior);
    Some(behavior)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_probes::events::DropCounts;

    #[test]
    fn a_cgroup_whose_events_were_all_lost_is_its_losses() {
        let lost = DropCounts {
            ringbuf: 3,
            ..DropCounts::default()
        };
        let counts = KernelCounts {
            drops: HashMap::from([(7, lost), (8, DropCounts::default())]),
            ..KernelCounts::default()
        };
        let behavior = with_counts(None, 7, &counts).expect("a behavior of losses alone");
        assert!(behavior.is_empty() && behavior.lost_anything());
        assert_eq!(behavior.drops.ringbuf, 3);
        // Nothing seen and nothing lost: nothing to report.
        assert!(with_counts(None, 8, &counts).is_none());
        assert!(with_counts(None, 9, &counts).is_none());
    }
}
