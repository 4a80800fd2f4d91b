//! `imprint monitor`: records like `record` and checks every event, as it
//! is decoded, against a learnt baseline (reports merged as `recommend`
//! merges them) and the built-in rules; alerts go out as JSON lines. One
//! command (`-- CMD`, against `--baseline` reports) or every cgroup of the
//! host for a while (`--duration`, each against the report of its own name
//! in `--baseline-dir`; cgroups without one get the built-in rules only).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use imprint_crd::report::Subject;

use crate::cgroups::Hierarchy;
use crate::detect::baseline::Baseline;
use crate::detect::shared::SharedDetector;
use crate::detect::sink;
use crate::detect::{Detector, DetectorConfig, DetectorStats, Resolve, Watch};
use crate::pipeline::drain::Observer;
use crate::pipeline::hostname;
use crate::pipeline::placement::{ByName, HostResolver};
use crate::probes::ProcessTable;
use crate::record::{self, RecordOptions, Watcher};
use crate::report;
use crate::runtime::{Containers, Filter};

/// What to monitor, against what, and where alerts go.
#[derive(Debug)]
pub struct MonitorOptions {
    /// The recording (command or duration, hooks, filter); its `output`:
    /// where reports go too, if anywhere.
    pub record: RecordOptions,
    /// Baseline reports of the command.
    pub baselines: Vec<PathBuf>,
    /// Baseline reports of the host's cgroups, by report name.
    pub baseline_dir: Option<PathBuf>,
    /// Rules, limits, API server addresses.
    pub detector: DetectorConfig,
    /// Alerts file (`None`: standard output).
    pub alerts: Option<PathBuf>,
}

/// Monitors; returns the exit code to leave with (the command's).
pub async fn monitor(options: MonitorOptions) -> Result<i32> {
    let (sender, writer) = sink::start(options.alerts.clone())
        .with_context(|| format!("opening {}", display(&options.alerts)))?;
    let watcher = if options.record.command.is_empty() {
        let baselines = match &options.baseline_dir {
            Some(dir) => read_baseline_dir(dir)?,
            None => HashMap::new(),
        };
        Target::Host {
            baselines,
            filter: options.record.recording.filter.clone(),
        }
    } else {
        if options.baseline_dir.is_some() {
            bail!(
                "--baseline-dir is for monitoring the host (--duration); give a command's baseline with --baseline"
            );
        }
        Target::Command {
            baseline: read_baselines(&options.baselines)?,
            command: options.record.command.clone(),
        }
    };
    let processes = ProcessTable::default();
    let mut detector = Detector::new(options.detector.clone(), Box::new(Unplaced));
    detector.set_processes(Box::new(processes.clone()));
    let detector = SharedDetector::new(detector, sender.clone());
    let ticker = detector.summarize();
    let shared = Shared {
        detector: detector.clone(),
        target: watcher,
    };
    let mut recording = options.record;
    recording.recording.track_processes = Some(processes);
    let code = record::record(recording, Some(Box::new(shared))).await?;
    drop(ticker);
    // Whatever is still held back is summed up now.
    detector.send_summaries(Instant::now() + Duration::from_secs(1));
    let stats = detector.lock().stats();
    let lost = sender.lost();
    drop(sender);
    drop(detector);
    let written = writer.finish().await.context("writing alerts")?;
    eprintln!("{}", summary(&stats, written, lost));
    Ok(code)
}

fn display(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map_or("standard output".into(), |p| p.display().to_string())
}

/// One line for the end of a run.
fn summary(stats: &DetectorStats, written: u64, lost: u64) -> String {
    let mut rules: Vec<_> = stats.alerts.iter().collect();
    rules.sort();
    let by_rule = rules
        .iter()
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut line = format!("imprint monitor: {written} alert(s)");
    if !by_rule.is_empty() {
        line.push_str(&format!(" ({by_rule})"));
    }
    if stats.held > 0 {
        line.push_str(&format!("; {} held back by the rate limit", stats.held));
    }
    if stats.cooled > 0 {
        line.push_str(&format!("; {} repeats within the cooldown", stats.cooled));
    }
    if lost > 0 {
        line.push_str(&format!("; {lost} LOST (the alert writer fell behind)"));
    }
    line
}

/// The baseline of `-- CMD`: its reports merged; an unreadable report is
/// an error, never a smaller baseline.
pub fn read_baselines(paths: &[PathBuf]) -> Result<Option<Arc<Baseline>>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut baseline = Baseline::default();
    for path in paths {
        let report = report::read(path)?;
        baseline.add(&report.spec);
    }
    Ok(Some(Arc::new(baseline)))
}

/// Every report in `dir`, by file name without its extension (the name
/// `record --duration` gave it).
pub fn read_baseline_dir(dir: &Path) -> Result<HashMap<String, Arc<Baseline>>> {
    let mut baselines = HashMap::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if !matches!(ext, "json" | "yaml" | "yml") {
            continue;
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let report = report::read(&path)?;
        baselines.insert(stem, Arc::new(Baseline::from_reports([&report.spec])));
    }
    Ok(baselines)
}

/// What is watched.
enum Target {
    Command {
        baseline: Option<Arc<Baseline>>,
        command: Vec<String>,
    },
    Host {
        baselines: HashMap<String, Arc<Baseline>>,
        filter: Filter,
    },
}

/// The detector the observer feeds, and what it watches.
struct Shared {
    detector: SharedDetector,
    target: Target,
}

impl Shared {
    fn observer(self, resolver: Box<dyn Resolve>) -> Observer {
        let detector = self.detector;
        detector.lock().set_resolver(resolver);
        Box::new(move |event| detector.observe(event))
    }
}

impl Watcher for Shared {
    fn for_command(self: Box<Self>, id: u64, path: &str) -> Observer {
        let resolver: Box<dyn Resolve> = match &self.target {
            Target::Command { baseline, command } => Box::new(CommandResolver {
                ids: HashSet::from([id]),
                watch: Watch {
                    key: path.to_string(),
                    subject: Subject {
                        node: hostname(),
                        cgroup: Some(path.to_string()),
                        command: Some(command.clone()),
                        ..Subject::default()
                    },
                    baseline: baseline.clone(),
                    started: false,
                    settled: true,
                    provisional: false,
                },
            }),
            Target::Host { .. } => Box::new(Unplaced),
        };
        self.observer(resolver)
    }

    fn for_host(self: Box<Self>, hierarchy: &Hierarchy, containers: &Containers) -> Observer {
        let resolver: Box<dyn Resolve> = match &self.target {
            Target::Host { baselines, filter } => Box::new(HostResolver::new(
                hierarchy,
                containers,
                filter.clone(),
                None,
                Box::new(ByName(baselines.clone())),
            )),
            Target::Command { .. } => Box::new(Unplaced),
        };
        self.observer(resolver)
    }
}

/// Places nothing (before the recording knows what it records).
struct Unplaced;

impl Resolve for Unplaced {
    fn resolve(&mut self, _: u64, _: Option<(&str, u64)>) -> Option<Watch> {
        None
    }
}

/// `-- CMD`: its cgroup and every cgroup made below it are one container.
struct CommandResolver {
    ids: HashSet<u64>,
    watch: Watch,
}

impl Resolve for CommandResolver {
    fn resolve(&mut self, id: u64, made: Option<(&str, u64)>) -> Option<Watch> {
        if let Some((_, parent)) = made
            && self.ids.contains(&parent)
        {
            self.ids.insert(id);
        }
        self.ids.contains(&id).then(|| self.watch.clone())
    }
}
