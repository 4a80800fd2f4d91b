//! `imprint record`: records one command (and everything it starts) or,
//! for a duration, every cgroup of the host, and writes the reports: a
//! recording [`Session`] with a file sink.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use imprint_crd::report::Subject;
use tracing::{info, warn};

use crate::capture::aggregate::Behavior;
use crate::cgroups::{Hierarchy, IMPRINT_PARENT, is_imprints_own};
use crate::kube_names::object_name;
use crate::names::Arch;
use crate::pipeline::drain::Observer;
use crate::pipeline::own_cgroup::OwnCgroup;
use crate::pipeline::{RecordingOptions, Scope, Session, hostname};
use crate::report::{self, Clock, Format};
use crate::runtime::{self, Containers};
use crate::summary;
use crate::task::Stop;

/// What to record and where the reports go.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Folder for the report files (`None`: no reports, for `monitor`).
    pub output: Option<PathBuf>,
    /// File format.
    pub format: Format,
    /// Record every cgroup for this long (when there is no command).
    pub duration: Option<Duration>,
    /// The command to run and record.
    pub command: Vec<String>,
    /// The hooks, the runtime, the filter.
    pub recording: RecordingOptions,
}

/// Makes the observer that sees a recording's events as they are decoded
/// (detection), once the recorded cgroup or the session is known.
pub trait Watcher: Send {
    /// For `CMD`, recorded in cgroup `id` at `path`.
    fn for_command(self: Box<Self>, id: u64, path: &str) -> Observer;
    /// For every cgroup of the host, named through `containers`.
    fn for_host(self: Box<Self>, hierarchy: &Hierarchy, containers: &Containers) -> Observer;
}

/// Records and writes the reports; returns the exit code to leave with
/// (the command's, for `record -- CMD`). `watcher`: who else sees the
/// events.
pub async fn record(options: RecordOptions, watcher: Option<Box<dyn Watcher>>) -> Result<i32> {
    let mut stop = Stop::listen()?;
    let hierarchy = Hierarchy::find(options.recording.cgroup_root.as_deref())?;
    hierarchy.remove_stale();
    if options.command.is_empty() {
        let duration = options
            .duration
            .context("give a command after `--`, or --duration")?;
        let own = OwnCgroup::enter(&hierarchy, "self")?;
        let result = record_host(&hierarchy, &options, duration, &own, &mut stop, watcher).await;
        own.leave(&hierarchy);
        result.map(|()| 0)
    } else {
        let cgroup = format!("{IMPRINT_PARENT}/record-{}", std::process::id());
        let dir = hierarchy.create(&cgroup)?;
        let result = record_command(&hierarchy, &options, &cgroup, &dir, &mut stop, watcher).await;
        for left in hierarchy.remove_tree(&cgroup) {
            warn!(cgroup = %left.display(), "cgroup still holds processes the command left behind; not removed");
        }
        hierarchy.remove_parent_if_unused();
        result
    }
}

async fn record_command(
    hierarchy: &Hierarchy,
    options: &RecordOptions,
    cgroup: &str,
    dir: &Path,
    stop: &mut Stop,
    watcher: Option<Box<dyn Watcher>>,
) -> Result<i32> {
    let id = hierarchy.id_of(cgroup)?;
    let session = Session::start(
        &options.recording,
        hierarchy,
        Scope::Cgroup(dir.to_path_buf(), id),
        watcher.map(|w| w.for_command(id, cgroup)),
    )?;

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
            status = child.wait() => break status?,
            _ = stop.requested() => {
                if let Some(pid) = pid {
                    // SAFETY: signalling the child we started.
                    unsafe { libc::kill(pid as i32, libc::SIGINT) };
                }
            }
        }
    };
    session.finish().await;
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let Some(output) = &options.output else {
        session.report_degradation();
        return Ok(code);
    };

    // The command's cgroup and every cgroup below it form one report.
    let counts = session.probes.kernel_counts();
    let mut behavior = Behavior::default();
    {
        let captured = session.captured();
        let aggregator = &captured.aggregator;
        for (cgroup_id, b) in &aggregator.cgroups {
            if *cgroup_id == id || descends_from(*cgroup_id, id, &aggregator.parents) {
                let mut b = b.clone();
                counts.apply(*cgroup_id, &mut b);
                behavior.merge(&b);
            }
        }
    }
    let name = object_name(
        &format!(
            "{}-{}",
            Path::new(program)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ),
        253,
    );
    let subject = Subject {
        node: hostname(),
        cgroup: Some(cgroup.to_string()),
        command: Some(options.command.clone()),
        ..Subject::default()
    };
    let arch = Arch::native().context("unsupported architecture")?;
    let mut report = report::build(&name, subject, &behavior, arch, &Clock::now());
    let losses = session.node_losses();
    session.annotate(&mut report.spec, &losses, &Default::default());
    report.spec.stats.start_observed = session.start_observed(&[id]);
    let path = report::write(output, &name, &report, options.format)?;
    eprintln!("{}", summary::line(&report, &path));
    session.report_degradation();
    Ok(code)
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
    own: &OwnCgroup,
    stop: &mut Stop,
    watcher: Option<Box<dyn Watcher>>,
) -> Result<()> {
    let containers = Containers::default();
    let observer = watcher.map(|w| w.for_host(hierarchy, &containers));
    let mut session = Session::start_naming(
        &options.recording,
        hierarchy,
        Scope::All(vec![own.ignored()]),
        observer,
        containers,
    )?;
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
                    session.captured().aggregator.cgroups.len()
                );
                if tty { eprint!("\r{line}") } else { eprintln!("{line}") }
            }
        }
    }
    if tty {
        eprintln!();
    }
    session.finish().await;
    let Some(output) = &options.output else {
        session.report_degradation();
        return Ok(());
    };

    let mut ids: Vec<u64> = session
        .captured()
        .aggregator
        .cgroups
        .keys()
        .copied()
        .collect();
    // Cgroups of which every event was lost have losses to report.
    let counts = session.probes.kernel_counts();
    ids.extend(
        counts
            .drops
            .iter()
            .filter(|(_, d)| d.total() > 0)
            .map(|(id, _)| *id),
    );
    ids.sort_unstable();
    ids.dedup();
    let known = session.paths(hierarchy, &ids);
    let clock = Clock::now();
    let arch = Arch::native().context("unsupported architecture")?;
    // One report per container: a child cgroup it made folds into it.
    let mut by_stem: std::collections::BTreeMap<String, (Subject, Behavior, Vec<u64>)> =
        Default::default();
    for id in ids {
        let Some(behavior) = session.behavior_of(id, &counts) else {
            continue;
        };
        let path = known
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("cgroup-{id}"));
        // Cgroups in which nothing ran (a pod's, a QoS class's) and other
        // imprint instances' own cgroups get no report.
        let lost = counts.drops.get(&id).is_some_and(|d| d.total() > 0);
        if (behavior.is_empty() && !lost) || is_imprints_own(&path) {
            continue;
        }
        let holder = runtime::classify(&path, &session.containers);
        if !options.recording.filter.keeps(&holder) {
            continue;
        }
        let subject = runtime::subject(&path, &holder, hostname());
        let stem = runtime::report_stem(subject.cgroup.as_deref().unwrap_or(&path), &subject);
        by_stem
            .entry(stem)
            .and_modify(|(_, merged, ids)| {
                merged.merge(&behavior);
                ids.push(id);
            })
            .or_insert((subject, behavior, vec![id]));
    }
    let losses = session.node_losses();
    for (stem, (subject, behavior, ids)) in by_stem {
        let mut report = report::build(&object_name(&stem, 253), subject, &behavior, arch, &clock);
        session.annotate(&mut report.spec, &losses, &Default::default());
        report.spec.stats.start_observed = session.start_observed(&ids);
        let written = report::write(output, &stem, &report, options.format)?;
        eprintln!("{}", summary::line(&report, &written));
    }
    session.report_degradation();
    Ok(())
}
