//! Building `ContainerBehaviorReport` documents from a cgroup's behavior,
//! and writing and reading them as JSON or YAML files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use imprint_crd::report::{
    ArgumentValue, CapabilityUse, ContainerBehaviorReport, ContainerBehaviorReportSpec, Drops,
    Executable, FileAccess, Stats, Subject, SyscallArguments, SyscallSet, Window,
};
use imprint_crd::yaml;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::capture::aggregate::Behavior;
use crate::names::{Arch, capability_name};

/// File format of reports and profiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON.
    #[default]
    Json,
    /// YAML.
    Yaml,
}

impl Format {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

/// Errors reading or writing report files.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a valid report.
    #[error("{path}: not a valid ContainerBehaviorReport: {reason}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong, on one line.
        reason: String,
    },
}

/// Converts boot-time nanoseconds to wall-clock RFC 3339.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall_minus_boot_ns: i128,
}

impl Clock {
    /// Reads both clocks now.
    pub fn now() -> Self {
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let wall = clock_ns(libc::CLOCK_REALTIME);
        Clock {
            wall_minus_boot_ns: wall - boot,
        }
    }

    /// RFC 3339 of a boot-time timestamp.
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        let wall = i128::from(boot_ns) + self.wall_minus_boot_ns;
        let secs = (wall / 1_000_000_000) as i64;
        let nanos = (wall % 1_000_000_000) as u32;
        chrono::DateTime::from_timestamp(secs, nanos)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

/// Boot-time nanoseconds now (the clock the kernel stamps events with).
pub fn boot_ns() -> u64 {
    u64::try_from(clock_ns(libc::CLOCK_BOOTTIME)).unwrap_or_default()
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// The report of one cgroup's behavior. `name` becomes metadata.name.
pub fn build(
    name: &str,
    subject: Subject,
    behavior: &Behavior,
    arch: Arch,
    clock: &Clock,
) -> ContainerBehaviorReport {
    let mut names = Vec::new();
    let mut unknown_numbers = Vec::new();
    for nr in &behavior.syscalls {
        match arch.syscall_name(*nr) {
            Some(name) => names.push(name.to_string()),
            None => unknown_numbers.push(*nr),
        }
    }
    names.sort();
    let executables = behavior
        .executables
        .iter()
        .map(|((path, args), stats)| Executable {
            path: path.clone(),
            args: args.clone(),
            count: stats.count,
            setuid: stats.setuid,
            setgid: stats.setgid,
            file_capabilities: (0..64)
                .filter(|cap| stats.file_caps & (1u64 << cap) != 0)
                .map(|cap| capability_name(cap).unwrap_or_else(|| format!("CAP_{cap}")))
                .collect(),
            euid: stats.euid,
        })
        .collect();
    let files = behavior
        .files
        .iter()
        .map(|(path, access)| FileAccess {
            path: path.clone(),
            access: access.clone(),
        })
        .collect();
    let capabilities = behavior
        .capabilities
        .iter()
        .map(|(cap, stats)| CapabilityUse {
            name: capability_name(*cap).unwrap_or_else(|| format!("CAP_{cap}")),
            needed: stats.needed,
            denied: stats.denied,
            probed: stats.probed,
            runtime: stats.runtime,
        })
        .collect();
    let d = behavior.drops;
    let mut spec = ContainerBehaviorReportSpec {
        subject,
        window: if behavior.events > 0 {
            Window {
                first_seen: Some(clock.rfc3339(behavior.first_seen_ns)),
                last_seen: Some(clock.rfc3339(behavior.last_seen_ns)),
            }
        } else {
            Window::default()
        },
        syscalls: SyscallSet {
            arch: arch.kernel_name().into(),
            names,
            unknown_numbers,
            arguments: arguments(behavior, arch),
        },
        executables,
        files,
        network: behavior.network.iter().cloned().collect(),
        capabilities,
        covered: None,
        stats: Stats {
            events: behavior.events,
            drops: Drops {
                total: 0,
                ring_buffer: d.ringbuf,
                map_full: d.map_full,
                path_truncated: d.truncated,
                read_failures: d.read_fails,
                // Written now: the losses happened before.
                last_at: (d.total() > 0).then(|| clock.rfc3339(boot_ns())),
            },
            truncated: behavior.truncated.iter().map(|s| s.to_string()).collect(),
            ..Stats::default()
        },
    };
    spec.update_counts();
    ContainerBehaviorReport {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        spec,
    }
}

/// The argument values of the recorded syscalls, by name: each value the
/// probe took as the arguments it stands for, the same call once.
fn arguments(behavior: &Behavior, arch: Arch) -> Vec<SyscallArguments> {
    let mut arguments: Vec<SyscallArguments> = behavior
        .syscall_args
        .iter()
        .filter_map(|(nr, (values, overflow))| {
            let name = arch.syscall_name(*nr)?;
            let calls: BTreeSet<Vec<ArgumentValue>> = values
                .iter()
                .filter_map(|v| crate::probes::arguments::decode(name, *v))
                .collect();
            Some(SyscallArguments {
                name: name.to_string(),
                calls: calls.into_iter().collect(),
                overflow: *overflow,
            })
        })
        .collect();
    arguments.sort_by(|a, b| a.name.cmp(&b.name));
    arguments
}

/// Serializes a document in `format`.
pub fn to_text<T: serde::Serialize>(value: &T, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(value).expect("report types serialize") + "\n",
        Format::Yaml => yaml::to_string(value).expect("report types serialize"),
    }
}

/// Writes `report` into `dir` as `<stem>.<ext>`; returns the path.
pub fn write(
    dir: &Path,
    stem: &str,
    report: &ContainerBehaviorReport,
    format: Format,
) -> Result<PathBuf, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("{stem}.{}", format.extension()));
    std::fs::write(&path, to_text(report, format)).map_err(io(&path))?;
    Ok(path)
}

/// Reads a report file (JSON or YAML, by content).
pub fn read(path: &Path) -> Result<ContainerBehaviorReport, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|reason| ReportError::Invalid {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses report text (JSON or YAML) of a whole report (not one covered by
/// a profile); the error is one line naming the problem.
pub fn parse(text: &str) -> Result<ContainerBehaviorReport, String> {
    let report = parse_covered(text)?;
    if let Some(covered) = &report.spec.covered {
        return Err(format!(
            "covered by the BehaviorProfile {:?}: it holds only what that profile had not learnt, not what the container did (a whole report is needed here)",
            covered.profile
        ));
    }
    Ok(report)
}

/// A report file or the BehaviorProfile that covers reports.
pub enum Input {
    /// A report, whole or covered.
    Report(Box<ContainerBehaviorReport>),
    /// A profile.
    Profile(Box<imprint_crd::profile::BehaviorProfile>),
}

/// Reads a report file, or a BehaviorProfile's (JSON or YAML, by content).
pub fn read_input(path: &Path) -> Result<Input, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |reason| ReportError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let profile = if text.trim_start().starts_with('{') {
        serde_json::from_str::<serde_json::Value>(&text).ok()
    } else {
        yaml::from_str::<serde_json::Value>(&text).ok()
    }
    .filter(|v| v.get("kind").and_then(|k| k.as_str()) == Some("BehaviorProfile"));
    match profile {
        Some(value) => serde_json::from_value(value)
            .map(|p| Input::Profile(Box::new(p)))
            .map_err(|e| {
                invalid(format!(
                    "invalid BehaviorProfile: {}",
                    one_line(&e.to_string())
                ))
            }),
        None => parse_covered(&text)
            .map(|r| Input::Report(Box::new(r)))
            .map_err(invalid),
    }
}

/// Parses report text, whole or covered.
fn parse_covered(text: &str) -> Result<ContainerBehaviorReport, String> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err("the file is empty".into());
    }
    let value: serde_json::Value = if trimmed.starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?
    } else {
        yaml::from_str(text).map_err(|e| format!("malformed YAML: {}", one_line(&e.to_string())))?
    };
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    if field("kind") != "ContainerBehaviorReport" {
        return Err(format!(
            "kind is {:?}, expected \"ContainerBehaviorReport\"",
            field("kind")
        ));
    }
    let api_version = format!("{}/{}", imprint_crd::GROUP, imprint_crd::VERSION);
    if field("apiVersion") != api_version {
        return Err(format!(
            "apiVersion is {:?}, expected {api_version:?}",
            field("apiVersion")
        ));
    }
    let report: ContainerBehaviorReport = serde_json::from_value(value)
        .map_err(|e| format!("invalid spec: {}", one_line(&e.to_string())))?;
    if Arch::from_kernel_name(&report.spec.syscalls.arch).is_none() {
        return Err(format!(
            "spec.syscalls.arch {:?} is not x86_64 or aarch64",
            report.spec.syscalls.arch
        ));
    }
    Ok(report)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::aggregate::Behavior;

    fn sample() -> ContainerBehaviorReport {
        let mut b = Behavior::default();
        b.syscalls.extend([0, 1, 60, 9999]);
        b.events = 4;
        b.first_seen_ns = 1;
        b.last_seen_ns = 2;
        build(
            "sample",
            Subject::default(),
            &b,
            Arch::X86_64,
            &Clock::now(),
        )
    }

    #[test]
    fn builds_sorted_names_and_keeps_unknown_numbers() {
        let r = sample();
        assert_eq!(r.spec.syscalls.names, ["exit", "read", "write"]);
        assert_eq!(r.spec.syscalls.unknown_numbers, [9999]);
        assert_eq!(r.spec.stats.syscalls, 3);
    }

    #[test]
    fn round_trips_through_json_and_yaml() {
        let r = sample();
        for format in [Format::Json, Format::Yaml] {
            let text = to_text(&r, format);
            assert!(text.contains("imprint.dev/v1alpha1"), "{text}");
            assert_eq!(parse(&text).unwrap(), r, "{format:?}");
        }
    }

    #[test]
    fn bad_input_gives_one_line_errors() {
        let json = to_text(&sample(), Format::Json);
        let cases = [
            (String::new(), "empty"),
            (json[..json.len() / 2].to_string(), "malformed JSON"),
            (json.replace("ContainerBehaviorReport", "Pod"), "kind is"),
            (
                json.replace("\"syscalls\": {", "\"sys\": {"),
                "missing field `syscalls`",
            ),
            (json.replace("x86_64", "sparc"), "not x86_64"),
            ("kind: [unclosed".to_string(), "malformed YAML"),
        ];
        for (text, expected) in cases {
            let error = parse(&text).unwrap_err();
            assert!(
                error.contains(expected),
                "{error:?} should mention {expected:?}"
            );
            assert!(!error.contains('\n'), "{error:?} is not one line");
        }
    }
}
