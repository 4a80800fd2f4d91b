//! `imprint record`: records one command (and everything it starts) or,
//! for a duration, every cgroup of the host, and writes the reports.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aya::maps::{MapData, RingBuf};
use imprint_crd::report::Subject;
use tokio::io::unix::AsyncFd;
use tracing::{info, warn};

use crate::capture::aggregate::{Aggregator, Behaviour};
use crate::capture::decode::decode;
use crate::cgroups::{Hierarchy, IMPRINT_PARENT};
use crate::names::Arch;
use crate::probes::{CapabilityHook, ProbeConfig, Probes};
use crate::recommend::sanitize_name;
use crate::report::{self, Clock, Format};
use crate::runtime::containerd::{self, Containers};
use crate::runtime::{self as runtime_resolver, Filter};
use crate::summary;

/// What to record and where the reports go.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Folder for the report files.
    pub output: PathBuf,
    /// File format.
    pub format: Format,
    /// Record every cgroup for this long (when there is no command).
    pub duration: Option<Duration>,
    /// The command to run and record.
    pub command: Vec<String>,
    /// Which hook sees capability checks.
    pub capability_hook: CapabilityHook,
    /// containerd socket for resolving containers to pods (`None`: the
    /// first default socket that exists, if any).
    pub runtime_socket: Option<PathBuf>,
    /// Which cgroups get a report.
    pub filter: Filter,
    /// Root of the cgroup v2 hierarchy (`None`: the mounted one).
    pub cgroup_root: Option<PathBuf>,
    /// Which API names containers.
    pub runtime_api: runtime_resolver::RuntimeApi,
}

/// Records and writes the reports; returns the exit code to leave with
/// (the command's, for `record -- CMD`).
pub async fn record(options: RecordOptions) -> Result<i32> {
    let mut stop = Stop::listen()?;
    let hierarchy = Hierarchy::find(options.cgroup_root.as_deref())?;
    hierarchy.remove_stale();
    if options.command.is_empty() {
        let duration = options
            .duration
            .context("give a command after `--`, or --duration")?;
        record_host(&hierarchy, &options, duration, &mut stop).await?;
        Ok(0)
    } else {
        record_command(&hierarchy, &options, &mut stop).await
    }
}

/// Ends a background task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// SIGINT (Ctrl-C) and SIGTERM, listened to from the start so that a
/// signal during probe loading still ends the recording cleanly.
pub struct Stop {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    pub(crate) fn listen() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Stop {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves when a stop signal arrives.
    pub(crate) async fn requested(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Registers the ring buffer with the runtime, to wake when events arrive.
pub(crate) fn watch(ring: RingBuf<MapData>) -> Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the ring buffer owns its map fd, which stays open and the same
    // for as long as the RingBuf (and so the AsyncFd) lives.
    unsafe { AsyncFd::register(ring) }.map_err(|e| anyhow::anyhow!("watching the ring buffer: {e}"))
}

/// Drains the ring buffer into the aggregator; returns records read.
fn drain(ring: &mut RingBuf<MapData>, aggregator: &mut Aggregator) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        n += 1;
        match decode(&item) {
            Ok(event) => {
                tracing::trace!(?event, "event");
                aggregator.add(&event)
            }
            Err(error) => {
                aggregator.decode_errors += 1;
                warn!(%error, "undecodable event");
            }
        }
    }
    n
}

/// Reads what is still in flight once the recorded work has stopped.
async fn final_drain(events: &mut AsyncFd<RingBuf<MapData>>, aggregator: &mut Aggregator) {
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        drain(events.get_mut(), aggregator);
    }
}

async fn record_command(
    hierarchy: &Hierarchy,
    options: &RecordOptions,
    stop: &mut Stop,
) -> Result<i32> {
    let cgroup = format!("{IMPRINT_PARENT}/record-{}", std::process::id());
    let dir = hierarchy.create(&cgroup)?;
    let result = record_command_in(hierarchy, options, &cgroup, &dir, stop).await;
    for left in hierarchy.remove_tree(&cgroup) {
        warn!(cgroup = %left.display(), "cgroup still holds processes the command left behind; not removed");
    }
    hierarchy.remove_parent_if_unused();
    result
}

async fn record_command_in(
    hierarchy: &Hierarchy,
    options: &RecordOptions,
    cgroup: &str,
    dir: &Path,
    stop: &mut Stop,
) -> Result<i32> {
    let id = hierarchy.id_of(cgroup)?;
    let mut probes = Probes::load(
        &ProbeConfig {
            record_all: false,
            capability_hook: options.capability_hook,
            ignore: Vec::new(),
        },
        hierarchy.root(),
    )?;
    probes.record_cgroup(dir, id)?;
    let mut events = watch(probes.take_events()?)?;
    let mut aggregator = Aggregator::default();

    let procs = CString::new(
        dir.join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )?;
    let (program, args) = options.command.split_first().context("empty command")?;
    let mut command = tokio::process::Command::new(program);
    command.args(args);
    // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
    unsafe {
        command.pre_exec(move || join_cgroup(&procs));
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let pid = child.id();
    info!(pid, cgroup, "recording");

    let status = loop {
        tokio::select! {
            guard = events.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut aggregator);
                guard.clear_ready();
            }
            status = child.wait() => break status?,
            _ = stop.requested() => {
                if let Some(pid) = pid {
                    // SAFETY: signalling the child we started.
                    unsafe { libc::kill(pid as i32, libc::SIGINT) };
                }
            }
        }
    };
    final_drain(&mut events, &mut aggregator).await;

    // The command's cgroup and every cgroup below it form one report.
    let drops = probes.drops();
    let mut behaviour = Behaviour::default();
    for (cgroup_id, b) in &aggregator.cgroups {
        if *cgroup_id == id || descends_from(*cgroup_id, id, &aggregator.parents) {
            behaviour.merge(b);
            if let Some(d) = drops.get(cgroup_id) {
                behaviour.add_drops(d);
            }
        }
    }
    let name = sanitize_name(&format!(
        "{}-{}",
        Path::new(program)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let subject = Subject {
        node: hostname(),
        cgroup: Some(cgroup.to_string()),
        command: Some(options.command.clone()),
        ..Subject::default()
    };
    let arch = Arch::native().context("unsupported architecture")?;
    let report = report::build(&name, subject, &behaviour, arch, &Clock::now());
    let path = report::write(&options.output, &name, &report, options.format)?;
    eprintln!("{}", summary::line(&report, &path));
    report_degradation(&probes, aggregator.decode_errors);

    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Moves the calling (forked) process into the cgroup; async-signal-safe.
fn join_cgroup(procs: &CString) -> std::io::Result<()> {
    // SAFETY: open/write/close on a NUL-terminated path and a stack buffer.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let written = libc::write(fd, b"0".as_ptr().cast(), 1);
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if written != 1 {
            return Err(error);
        }
    }
    Ok(())
}

fn descends_from(id: u64, ancestor: u64, parents: &HashMap<u64, u64>) -> bool {
    let mut current = id;
    for _ in 0..64 {
        match parents.get(&current) {
            Some(parent) if *parent == ancestor => return true,
            Some(parent) => current = *parent,
            None => return false,
        }
    }
    false
}

async fn record_host(
    hierarchy: &Hierarchy,
    options: &RecordOptions,
    duration: Duration,
    stop: &mut Stop,
) -> Result<()> {
    // imprint moves into a cgroup of its own, which the probes ignore, so
    // its own syscalls do not land in the report of the cgroup it came from.
    let home = Hierarchy::path_of_process("self")?;
    let own = format!("{IMPRINT_PARENT}/self-{}", std::process::id());
    let own_dir = hierarchy.create(&own)?;
    hierarchy.join(&own, 0)?;
    let result = record_host_in(hierarchy, options, duration, &own, &own_dir, stop).await;
    hierarchy.leave(Some(&home), &own);
    result
}

async fn record_host_in(
    hierarchy: &Hierarchy,
    options: &RecordOptions,
    duration: Duration,
    own: &str,
    own_dir: &Path,
    stop: &mut Stop,
) -> Result<()> {
    let mut probes = Probes::load(
        &ProbeConfig {
            record_all: true,
            capability_hook: options.capability_hook,
            ignore: vec![(own_dir.to_path_buf(), hierarchy.id_of(own)?)],
        },
        hierarchy.root(),
    )?;
    let mut known = hierarchy.scan(100_000);
    let containers = Containers::default();
    let socket = options
        .runtime_socket
        .clone()
        .or_else(containerd::default_socket);
    let _watcher = socket.map(|socket| {
        AbortOnDrop(tokio::spawn(runtime_resolver::follow(
            socket,
            options.runtime_api,
            containers.clone(),
        )))
    });
    let mut events = watch(probes.take_events()?)?;
    let mut aggregator = Aggregator::default();
    let started = Instant::now();
    eprintln!(
        "recording every cgroup for {} (Ctrl-C ends early)",
        humantime::format_duration(duration)
    );
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    let tty = std::io::stderr().is_terminal();
    loop {
        tokio::select! {
            guard = events.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut aggregator);
                guard.clear_ready();
            }
            _ = &mut deadline => break,
            _ = stop.requested() => {
                eprintln!();
                info!("interrupted, writing reports");
                break;
            }
            _ = progress.tick() => {
                let line = format!(
                    "recording {:>4}s / {}s: {} cgroups",
                    started.elapsed().as_secs(),
                    duration.as_secs(),
                    aggregator.cgroups.len()
                );
                if tty { eprint!("\r{line}") } else { eprintln!("{line}") }
            }
        }
    }
    if tty {
        eprintln!();
    }
    final_drain(&mut events, &mut aggregator).await;

    known.extend(aggregator.paths.iter().map(|(k, v)| (*k, v.clone())));
    if aggregator.cgroups.keys().any(|id| !known.contains_key(id)) {
        known.extend(hierarchy.scan(100_000));
    }
    let drops = probes.drops();
    let clock = Clock::now();
    let arch = Arch::native().context("unsupported architecture")?;
    let mut used_stems = HashMap::new();
    let mut ids: Vec<_> = aggregator.cgroups.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let mut behaviour = aggregator.cgroups.remove(&id).unwrap_or_default();
        let drops = drops.get(&id);
        if let Some(d) = drops {
            behaviour.add_drops(d);
        }
        let path = known
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("cgroup-{id}"));
        // Cgroups in which nothing ran (a pod's, a QoS class's) and other
        // imprint instances' own cgroups get no report.
        let lost = drops.is_some_and(|d| d.ringbuf + d.map_full + d.truncated + d.read_fails > 0);
        if (behaviour.is_empty() && !lost) || is_imprints_own(&path) {
            continue;
        }
        let holder = runtime_resolver::classify(&path, &containers);
        if !options.filter.keeps(&holder) {
            continue;
        }
        let subject = runtime_resolver::subject(&path, &holder, hostname());
        let mut stem = runtime_resolver::report_stem(&path, &subject);
        if used_stems.insert(stem.clone(), id).is_some() {
            stem = format!("{stem}-{id}");
        }
        let report = report::build(&sanitize_name(&stem), subject, &behaviour, arch, &clock);
        let written = report::write(&options.output, &stem, &report, options.format)?;
        eprintln!("{}", summary::line(&report, &written));
    }
    report_degradation(&probes, aggregator.decode_errors);
    Ok(())
}

/// Whether `path` is a cgroup imprint made for itself (`/imprint/...`).
pub(crate) fn is_imprints_own(path: &str) -> bool {
    path == IMPRINT_PARENT
        || path
            .strip_prefix(IMPRINT_PARENT)
            .is_some_and(|rest| rest.starts_with('/'))
}

pub(crate) fn report_degradation(probes: &Probes, decode_errors: u64) {
    use imprint_probes::events::counter;
    let counters = probes.counters();
    let c = |i: usize| counters.values[i];
    if c(counter::RINGBUF_DROPS) + c(counter::MAP_FULL) + c(counter::STORAGE_FAILS) + decode_errors
        > 0
    {
        warn!(
            ring_buffer_drops = c(counter::RINGBUF_DROPS),
            map_full = c(counter::MAP_FULL),
            storage_failures = c(counter::STORAGE_FAILS),
            decode_errors,
            "events were lost; the reports count them per cgroup"
        );
    }
    info!(
        hooks = probes.attached.len(),
        unavailable = probes.unavailable.len(),
        "recording ended"
    );
    for missing in &probes.unavailable {
        eprintln!(
            "not recorded: {} ({} unavailable: {})",
            missing.lost, missing.hook, missing.error
        );
    }
}

pub(crate) fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Fails early with a clear message when not run as root.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "imprint record needs root (CAP_BPF, CAP_PERFMON and write access to the cgroup hierarchy)"
        );
    }
    Ok(())
}
