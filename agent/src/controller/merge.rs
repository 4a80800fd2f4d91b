//! Merging every report of one workload (replicas, nodes, restarts) into
//! per-container profiles, the securityContext recommendation, and the
//! Learning -> Stable phase. Pure functions: reports in, status out.

use std::collections::{BTreeMap, BTreeSet};

use imprint_crd::profile::{
    ContainerProfile, Overrides, Phase, ProfileCondition, RecommendedSecurityContext, Recorded,
};
use imprint_crd::report::{
    Access, ContainerBehaviorReportSpec, CurrentSecurityContext, FileAccess, SyscallSet,
};

use super::completeness;
use crate::coverage::Base;
use crate::detect::arguments::ArgumentShapes;
use crate::recommend;

/// Paths writable in every container even with a read-only root
/// filesystem (runtime-provided mounts).
pub const ALWAYS_WRITABLE: [&str; 3] = ["/dev", "/proc", "/sys"];

/// Syscalls that open or change files out of the probes' sight (io_uring
/// operations, opens by file handle): a container that used them may have
/// written anywhere, so its root filesystem is never recommended read-only.
pub const UNSEEN_FILE_SYSCALLS: [&str; 3] =
    ["io_uring_enter", "io_uring_setup", "open_by_handle_at"];

/// The merged view of a workload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MergedWorkload {
    /// Per container, sorted by name.
    pub containers: Vec<ContainerProfile>,
    /// Reports merged.
    pub reports: u64,
    /// Distinct pods seen.
    pub replicas: u64,
    /// Distinct nodes seen.
    pub nodes: u64,
    /// Events lost in any report.
    pub drops: u64,
    /// When the last of them was lost ([`completeness::last_loss`]).
    pub last_loss: Option<i64>,
    /// What keeps the profile from Stable however long it is unchanged
    /// (losses, missing hooks, starts never observed): the types of the
    /// conditions that say so.
    pub incomplete: Vec<String>,
    /// Problems to show as conditions.
    pub conditions: Vec<ProfileCondition>,
    /// Report entries skipped as invalid.
    pub skipped: usize,
}

/// The first few of `items`, and how many more there were.
fn first_few(items: &[&String]) -> String {
    const SHOWN: usize = 10;
    let mut message = items
        .iter()
        .take(SHOWN)
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        message.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    message
}

/// The first few skipped entries, and how many more there were.
fn skipped_message(skipped: &[String]) -> String {
    format!(
        "skipped {} invalid entries: {}",
        skipped.len(),
        first_few(&skipped.iter().collect::<Vec<_>>())
    )
}

/// Merges reports of one workload. `writable` gives, per container name,
/// the mount paths that are writable (volumes, emptyDirs, tmpfs).
pub fn merge_workload(
    reports: &[&ContainerBehaviorReportSpec],
    overrides: &Overrides,
    writable: &BTreeMap<String, Vec<String>>,
) -> MergedWorkload {
    let mut merge = WorkloadMerge::new(overrides);
    for report in reports {
        merge.add(report);
    }
    merge.finish(Some(writable)).0
}

/// A workload's merge, one report at a time: each report is added and may
/// be dropped at once, so a workload of a thousand large reports never has
/// them all in memory. What the merge keeps of a report beyond the union is
/// its subject, window and stats (its [`facts`]).
pub struct WorkloadMerge<'a> {
    overrides: &'a Overrides,
    /// The profile's uid and what it holds of each container, for the
    /// reports it covers ([`crate::coverage`]).
    bases: Option<(String, Bases)>,
    /// Containers whose base was added.
    based: BTreeSet<String>,
    /// Reports covered by a profile whose base is not here (another uid).
    uncovered: usize,
    containers: BTreeMap<String, ContainerMerge>,
    pods: BTreeSet<String>,
    nodes: BTreeSet<String>,
    drops: u64,
    facts: Vec<ContainerBehaviorReportSpec>,
    writable: BTreeMap<String, BTreeSet<String>>,
}

/// What a profile holds, by container: its status entry and its base.
type Bases = BTreeMap<String, (ContainerProfile, Base)>;

/// One container's union so far.
#[derive(Default)]
struct ContainerMerge {
    merged: recommend::Merged,
    executables: BTreeSet<String>,
    /// Their argument shapes (bounded).
    arguments: ArgumentShapes,
    escalates: bool,
    /// A program ran as uid 0.
    runs_as_root: bool,
    /// Plausible paths written (not ignored), before the writable mounts
    /// of every report are known.
    writes: BTreeSet<String>,
    network: BTreeSet<imprint_crd::report::NetworkEndpoint>,
    /// Files by access (bounded by [`bound_files`]).
    files: BTreeMap<String, BTreeSet<Access>>,
    skipped: Vec<String>,
}

/// Paths a container profile lists at most (past it they fold).
pub const PROFILE_FILES: usize = 1024;

/// `files` folded until at most `max` entries remain: each path into its
/// directory (`dir/*`), then into its top directory (`/top/**`), then `/**`;
/// accesses are kept (a fold only widens).
pub fn bound_files(
    files: BTreeMap<String, BTreeSet<Access>>,
    max: usize,
) -> BTreeMap<String, BTreeSet<Access>> {
    if files.len() <= max {
        return files;
    }
    let fold = |files: BTreeMap<String, BTreeSet<Access>>, to: &dyn Fn(&str) -> String| {
        let mut folded: BTreeMap<String, BTreeSet<Access>> = BTreeMap::new();
        for (path, access) in files {
            folded.entry(to(&path)).or_default().extend(access);
        }
        folded
    };
    let parent = |path: &str| {
        if path.ends_with("/*") || path.ends_with("/**") {
            return path.to_string();
        }
        match path.rsplit_once('/') {
            Some(("", _)) | None => path.to_string(),
            Some((dir, _)) => format!("{dir}/*"),
        }
    };
    let files = fold(files, &parent);
    if files.len() <= max {
        return files;
    }
    let top = |path: &str| match path.trim_start_matches('/').split_once('/') {
        Some((top, _)) => format!("/{top}/**"),
        None => path.to_string(),
    };
    let files = fold(files, &top);
    if files.len() <= max {
        return files;
    }
    fold(files, &|_| "/**".to_string())
}

/// What the merge keeps of a report besides the union: its subject,
/// window and stats (completeness, the current securityContext, counts).
pub fn facts(report: &ContainerBehaviorReportSpec) -> ContainerBehaviorReportSpec {
    ContainerBehaviorReportSpec {
        subject: report.subject.clone(),
        window: report.window.clone(),
        stats: report.stats.clone(),
        ..ContainerBehaviorReportSpec::default()
    }
}

impl<'a> WorkloadMerge<'a> {
    /// An empty merge with the profile's `overrides`.
    pub fn new(overrides: &'a Overrides) -> Self {
        WorkloadMerge {
            overrides,
            bases: None,
            based: BTreeSet::new(),
            uncovered: 0,
            containers: BTreeMap::new(),
            pods: BTreeSet::new(),
            nodes: BTreeSet::new(),
            drops: 0,
            facts: Vec::new(),
            writable: BTreeMap::new(),
        }
    }

    /// The reports covered by the profile of `uid` get what its
    /// `containers` hold added back (once per container).
    pub fn covered_by(mut self, uid: &str, containers: &[ContainerProfile]) -> Self {
        let bases = containers
            .iter()
            .filter_map(|c| Some((c.name.clone(), (c.clone(), Base::of(c)?))))
            .collect();
        self.bases = Some((uid.to_string(), bases));
        self
    }

    /// Adds one report.
    pub fn add(&mut self, report: &ContainerBehaviorReportSpec) {
        let name = report.subject.container.clone().unwrap_or_default();
        if let Some(coverage) = &report.covered {
            let base = self
                .bases
                .as_ref()
                .filter(|(uid, _)| *uid == coverage.uid)
                .and_then(|(_, bases)| bases.get(&name));
            match base {
                Some((container, base)) => {
                    if self.based.insert(name.clone()) {
                        self.containers.entry(name.clone()).or_default().add_base(
                            container,
                            base,
                            self.overrides,
                        );
                    }
                }
                None => self.uncovered += 1,
            }
        }
        if let Some(pod) = report
            .subject
            .pod_uid
            .as_ref()
            .or(report.subject.pod.as_ref())
        {
            self.pods.insert(pod.clone());
        }
        if let Some(node) = &report.subject.node {
            self.nodes.insert(node.clone());
        }
        self.drops += report.stats.drops.total;
        self.writable
            .entry(name.clone())
            .or_default()
            .extend(report.subject.writable_mounts.iter().cloned());
        self.containers
            .entry(name)
            .or_default()
            .add(report, self.overrides);
        self.facts.push(facts(report));
    }

    /// The subject, window and stats of every report added.
    pub fn facts(&self) -> Vec<&ContainerBehaviorReportSpec> {
        self.facts.iter().collect()
    }

    /// The merged workload, with root writes judged against `writable`
    /// (per container; `None`: the writable mounts the reports name), and
    /// the facts of every report.
    pub fn finish(
        self,
        writable: Option<&BTreeMap<String, Vec<String>>>,
    ) -> (MergedWorkload, Vec<ContainerBehaviorReportSpec>) {
        let seen: BTreeMap<String, Vec<String>> = self
            .writable
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        let writable = writable.unwrap_or(&seen);
        let mut skipped = Vec::new();
        let containers = self
            .containers
            .into_iter()
            .map(|(name, container)| {
                let mounts = writable.get(&name).cloned().unwrap_or_default();
                let (profile, mut skip) = container.finish(&name, self.overrides, &mounts);
                skipped.append(&mut skip);
                profile
            })
            .collect();
        let reports: Vec<&ContainerBehaviorReportSpec> = self.facts.iter().collect();
        let mut conditions = Vec::new();
        if !skipped.is_empty() {
            conditions.push(ProfileCondition {
                type_: "SkippedEntries".into(),
                status: "True".into(),
                reason: "UnknownNames".into(),
                message: skipped_message(&skipped),
            });
        }
        let mut cut: Vec<&String> = reports.iter().flat_map(|r| &r.stats.truncated).collect();
        cut.sort();
        cut.dedup();
        if !cut.is_empty() {
            conditions.push(ProfileCondition {
                type_: "Truncated".into(),
                status: "True".into(),
                reason: "ReportsBounded".into(),
                message: format!(
                    "reports were bounded (what a recommendation depends on is never cut): {}",
                    first_few(&cut)
                ),
            });
        }
        if self.uncovered > 0 {
            conditions.push(ProfileCondition {
                type_: completeness::COVERAGE_LOST.into(),
                status: "True".into(),
                reason: "ProfileReplaced".into(),
                message: format!(
                    "{} reports hold only what an earlier profile of this name did not (it was deleted or replaced): what it held of them is not in this profile until their agents write them whole again",
                    self.uncovered
                ),
            });
        }
        conditions.extend(completeness::conditions(&reports));
        let incomplete = conditions
            .iter()
            .filter(|c| completeness::BLOCKING.contains(&c.type_.as_str()))
            .map(|c| c.type_.clone())
            .collect();
        let merged = MergedWorkload {
            incomplete,
            containers,
            reports: reports.len() as u64,
            replicas: self.pods.len() as u64,
            nodes: self.nodes.len() as u64,
            drops: self.drops,
            last_loss: completeness::last_loss(&reports),
            skipped: skipped.len(),
            conditions,
        };
        (merged, self.facts)
    }
}

impl ContainerMerge {
    /// Adds what a profile holds of the container (for the reports it
    /// covers): the same as the reports it was learnt from would add.
    fn add_base(&mut self, container: &ContainerProfile, base: &Base, overrides: &Overrides) {
        for report in base.as_reports() {
            self.merged.add(&report);
        }
        self.escalates |= base.recorded().escalates;
        self.runs_as_root |= base.recorded().runs_as_root;
        for path in &container.executables {
            if plausible_path(path) {
                self.executables.insert(path.clone());
            }
        }
        self.arguments
            .add_profile(&container.executables, &container.exec_arguments);
        // The writes that decide the root filesystem are the profile's
        // `rootWrites` as they were (its files may be folded into
        // directories, which say less).
        for file in &container.files {
            self.add_file(file, None);
        }
        for path in &container.root_writes {
            if plausible_path(path) && !ignored(overrides, path) {
                self.writes.insert(path.clone());
            }
        }
        self.bound();
        self.network.extend(container.network.iter().cloned());
    }

    /// Adds a file; its writes too, unless `overrides` is `None`.
    fn add_file(&mut self, file: &FileAccess, overrides: Option<&Overrides>) {
        if !plausible_path(&file.path) {
            self.skipped
                .push(format!("file path {:?}", truncated(&file.path)));
            return;
        }
        if let Some(overrides) = overrides
            && file.access.iter().any(|a| a.is_write())
            && !ignored(overrides, &file.path)
            && !self.writes.contains(&file.path)
        {
            self.writes.insert(file.path.clone());
        }
        self.files
            .entry(file.path.clone())
            .or_default()
            .extend(file.access.iter().copied());
    }

    fn bound(&mut self) {
        if self.files.len() > 4 * PROFILE_FILES {
            self.files = bound_files(std::mem::take(&mut self.files), PROFILE_FILES);
        }
    }

    fn add(&mut self, report: &ContainerBehaviorReportSpec, overrides: &Overrides) {
        self.merged.add(report);
        for exec in &report.executables {
            if !plausible_path(&exec.path) {
                self.skipped
                    .push(format!("executable path {:?}", truncated(&exec.path)));
                continue;
            }
            if !self.executables.contains(&exec.path) {
                self.executables.insert(exec.path.clone());
            }
            self.arguments.add(&exec.path, &exec.args);
            self.escalates |= exec.gains_privilege();
            self.runs_as_root |= exec.euid == 0;
        }
        for file in &report.files {
            self.add_file(file, Some(overrides));
        }
        self.bound();
        for endpoint in &report.network {
            if !self.network.contains(endpoint) {
                self.network.insert(endpoint.clone());
            }
        }
    }

    fn finish(
        self,
        name: &str,
        overrides: &Overrides,
        writable: &[String],
    ) -> (ContainerProfile, Vec<String>) {
        let merged = self.merged;
        let mut skipped = merged.skipped.clone();
        skipped.extend(self.skipped);
        let mut syscalls: BTreeSet<String> =
            recommend::allowed_syscalls(&merged).into_iter().collect();
        for extra in &overrides.syscalls {
            if merged.syscalls.keys().any(|arch| arch.has_syscall(extra))
                || merged.syscalls.is_empty()
            {
                syscalls.insert(extra.clone());
            } else {
                skipped.push(format!("override syscall {extra:?}"));
            }
        }
        // Syscalls whose recorded arguments restrict them to the calls seen,
        // but those an override lifts.
        let mut arguments = merged.arguments.clone();
        for extra in &overrides.syscall_arguments {
            match arguments.add_allowed(extra) {
                Ok(()) => {
                    syscalls.insert(extra.name.clone());
                }
                Err(why) => skipped.push(format!(
                    "override syscallArguments for {:?} ({why})",
                    extra.name
                )),
            }
        }
        for lifted in &overrides.unrestricted_syscalls {
            if let Some(used) = arguments.by_syscall.get_mut(lifted) {
                used.unrestricted = Some("lifted by an override".into());
            }
        }
        let argument_rules = crate::argument_rules::rules(&arguments, &syscalls);
        let mut capabilities = merged.capabilities.clone();
        for extra in &overrides.capabilities {
            match crate::names::capability_from_name(extra) {
                Some(cap) => {
                    capabilities.insert(cap.to_string());
                }
                None => skipped.push(format!("override capability {extra:?}")),
            }
        }
        let root_writes: BTreeSet<String> = self
            .writes
            .into_iter()
            .filter(|path| {
                !ALWAYS_WRITABLE
                    .iter()
                    .copied()
                    .chain(writable.iter().map(String::as_str))
                    .any(|m| under(path, m))
            })
            .collect();
        let executables = self.executables;
        let security_context = RecommendedSecurityContext {
            capabilities_add: capabilities
                .iter()
                .map(|c| c.trim_start_matches("CAP_").to_string())
                .collect(),
            allow_privilege_escalation: self.escalates,
            read_only_root_filesystem: root_writes.is_empty()
                && !syscalls
                    .iter()
                    .any(|s| UNSEEN_FILE_SYSCALLS.contains(&s.as_str())),
            run_as_non_root: !executables.is_empty()
                && !self.runs_as_root
                && capabilities.is_empty(),
        };
        let recorded = Recorded {
            syscalls: merged
                .syscalls
                .iter()
                .map(|(arch, names)| SyscallSet {
                    arch: arch.kernel_name().to_string(),
                    names: names.iter().cloned().collect(),
                    unknown_numbers: Vec::new(),
                    arguments: names
                        .iter()
                        .filter_map(|name| merged.arguments.as_reported(name))
                        .collect(),
                })
                .collect(),
            capabilities: merged.capabilities.iter().cloned().collect(),
            escalates: self.escalates,
            runs_as_root: self.runs_as_root,
        };
        let profile = ContainerProfile {
            recorded: Some(recorded),
            name: name.to_string(),
            architectures: merged
                .syscalls
                .keys()
                .map(|a| a.kernel_name().to_string())
                .collect(),
            syscalls: syscalls.into_iter().collect(),
            capabilities: capabilities.into_iter().collect(),
            syscall_arguments: argument_rules.to_stored(),
            executables: executables.into_iter().collect(),
            exec_arguments: self.arguments.to_profile(),
            root_writes: root_writes.into_iter().collect(),
            network: self.network.into_iter().collect(),
            files: bound_files(self.files, PROFILE_FILES)
                .into_iter()
                .map(|(path, access)| FileAccess { path, access })
                .collect(),
            anomalies: Vec::new(),
            seccomp_profile: None,
            security_context,
            difference: Vec::new(),
        };
        (profile, skipped)
    }
}

/// Whether `overrides` ignore writes to `path`.
fn ignored(overrides: &Overrides, path: &str) -> bool {
    overrides.ignore_paths.iter().any(|p| under(path, p))
}

/// Whether a path from a report is one a kernel could have given: absolute,
/// no NUL or control characters, no `.`/`..` components, at most 4096 bytes.
pub fn plausible_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= 4096
        && !path.chars().any(|c| c.is_control())
        && !path.split('/').any(|part| part == "." || part == "..")
}

/// Mount paths each container may write, from the reports' subjects.
pub fn writable_mounts(reports: &[&ContainerBehaviorReportSpec]) -> BTreeMap<String, Vec<String>> {
    let mut by_container: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for report in reports {
        let name = report.subject.container.clone().unwrap_or_default();
        by_container
            .entry(name)
            .or_default()
            .extend(report.subject.writable_mounts.iter().cloned());
    }
    by_container
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// How the recommendation differs from the securityContext the workload
/// runs with now, one line per field that would change.
pub fn difference(
    recommended: &RecommendedSecurityContext,
    current: Option<&CurrentSecurityContext>,
    seccomp_profile: Option<&str>,
) -> Vec<String> {
    let current = current.cloned().unwrap_or_default();
    let shown = |v: Option<bool>| v.map_or("unset".to_string(), |b| b.to_string());
    let mut lines = Vec::new();
    if current.privileged == Some(true) {
        lines.push("privileged: false (now: true)".to_string());
    }
    let drops_all = current
        .capabilities_drop
        .iter()
        .any(|c| c.eq_ignore_ascii_case("ALL"));
    let mut now_add: Vec<String> = current
        .capabilities_add
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
        .collect();
    now_add.sort();
    if !drops_all || now_add != recommended.capabilities_add {
        lines.push(format!(
            "capabilities: drop [ALL], add [{}] (now: drop [{}], add [{}])",
            recommended.capabilities_add.join(", "),
            current.capabilities_drop.join(", "),
            now_add.join(", ")
        ));
    }
    if current.allow_privilege_escalation != Some(recommended.allow_privilege_escalation) {
        lines.push(format!(
            "allowPrivilegeEscalation: {} (now: {})",
            recommended.allow_privilege_escalation,
            shown(current.allow_privilege_escalation)
        ));
    }
    if recommended.read_only_root_filesystem && current.read_only_root_filesystem != Some(true) {
        lines.push(format!(
            "readOnlyRootFilesystem: true (now: {})",
            shown(current.read_only_root_filesystem)
        ));
    }
    if recommended.run_as_non_root && current.run_as_non_root != Some(true) {
        lines.push(format!(
            "runAsNonRoot: true (now: {})",
            shown(current.run_as_non_root)
        ));
    }
    if let Some(name) = seccomp_profile {
        let now = current.seccomp_profile.as_deref().unwrap_or("unset");
        if !now.ends_with(&format!("{name}.json")) {
            lines.push(format!("seccompProfile: the generated {name} (now: {now})"));
        }
    }
    lines
}

/// Whether `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// At most 80 characters of `text`, for messages.
fn truncated(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Whether the behavior in two sets of container profiles differs (what
/// resets the stability clock).
pub fn behavior_changed(before: &[ContainerProfile], after: &[ContainerProfile]) -> bool {
    let key = |c: &ContainerProfile| {
        (
            c.name.clone(),
            c.syscalls.clone(),
            // A call of a restricted syscall with new arguments is new behavior.
            c.syscall_arguments.clone(),
            c.capabilities.clone(),
            c.executables.clone(),
            c.root_writes.clone(),
            c.network.clone(),
        )
    };
    before.iter().map(key).collect::<Vec<_>>() != after.iter().map(key).collect::<Vec<_>>()
}

/// The next phase and time of last change (seconds since the epoch):
/// a change starts learning again; Stable needs the whole window without
/// change and no dropped events.
pub fn next_phase(
    changed: bool,
    incomplete: bool,
    last_change: Option<i64>,
    now: i64,
    window_secs: i64,
) -> (Phase, i64) {
    let last = match (changed, last_change) {
        (true, _) | (false, None) => now,
        (false, Some(t)) => t,
    };
    let phase = if !changed && !incomplete && now - last >= window_secs {
        Phase::Stable
    } else {
        Phase::Learning
    };
    (phase, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::tests::with_baseline;
    use imprint_crd::report::{Access, CapabilityUse, Executable, FileAccess, Subject, SyscallSet};

    /// Merging one report at a time (the controller's way, writable mounts
    /// taken from the reports) gives what merging them all at once gives,
    /// and keeps of each report only its subject, window and stats.
    #[test]
    fn one_at_a_time_is_all_at_once() {
        let write = |path: &str| FileAccess {
            path: path.into(),
            access: [Access::Write].into(),
        };
        let mut a = report("a", "n1", "x86_64", &["read", "write"]);
        a.subject.writable_mounts = vec!["/data".into()];
        a.files = vec![write("/data/x"), write("/etc/y")];
        a.stats.truncated = vec!["files: cut".into()];
        let mut b = report("b", "n2", "x86_64", &["openat"]);
        b.files = vec![write("/data/z"), write("/var/log/w")];
        let specs = [&a, &b];
        let overrides = Overrides::default();
        let at_once = merge_workload(&specs, &overrides, &writable_mounts(&specs));
        let mut merging = WorkloadMerge::new(&overrides);
        for spec in specs {
            merging.add(spec);
        }
        let (one_by_one, facts) = merging.finish(None);
        assert_eq!(one_by_one, at_once);
        assert_eq!(
            one_by_one.containers[0].root_writes,
            ["/etc/y", "/var/log/w"]
        );
        assert_eq!(one_by_one.replicas, 2);
        assert_eq!(facts.len(), 2);
        assert!(facts[0].files.is_empty() && facts[0].syscalls.names.is_empty());
        assert_eq!(facts[0].stats.truncated, ["files: cut"]);
        assert_eq!(facts[1].subject.node.as_deref(), Some("n2"));
    }

    fn report(pod: &str, node: &str, arch: &str, syscalls: &[&str]) -> ContainerBehaviorReportSpec {
        ContainerBehaviorReportSpec {
            subject: Subject {
                pod: Some(pod.into()),
                pod_uid: Some(format!("uid-{pod}")),
                node: Some(node.into()),
                container: Some("app".into()),
                ..Subject::default()
            },
            syscalls: SyscallSet {
                arch: arch.into(),
                names: syscalls.iter().map(|s| s.to_string()).collect(),
                unknown_numbers: vec![],
                arguments: Vec::new(),
            },
            ..Default::default()
        }
    }

    fn exec(path: &str, euid: u32, setuid: bool) -> Executable {
        Executable {
            path: path.into(),
            args: vec![],
            count: 1,
            setuid,
            setgid: false,
            euid,
            ..Executable::default()
        }
    }

    fn file(path: &str, access: &[Access]) -> FileAccess {
        FileAccess {
            path: path.into(),
            access: access.iter().copied().collect(),
        }
    }

    #[test]
    fn replicas_on_nodes_and_architectures_merge_into_the_union() {
        let a = report("web-a", "n1", "x86_64", &["read", "write"]);
        let b = report("web-b", "n2", "x86_64", &["read", "openat"]);
        let c = report("web-c", "n3", "aarch64", &["read", "openat"]);
        let m = merge_workload(&[&a, &b, &c], &Overrides::default(), &BTreeMap::new());
        assert_eq!((m.reports, m.replicas, m.nodes), (3, 3, 3));
        let app = &m.containers[0];
        assert_eq!(app.syscalls, with_baseline(&["openat", "read", "write"]));
        assert_eq!(app.architectures, ["x86_64", "aarch64"]);
        assert!(m.conditions.is_empty());
    }

    #[test]
    fn argument_shapes_of_every_replica_are_kept_and_a_cut_argv_allows_any() {
        let run = |path: &str, args: &[&str]| Executable {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..exec(path, 1000, false)
        };
        let mut a = report("web-a", "n1", "x86_64", &["read"]);
        a.executables = vec![run("/bin/sh", &["sh", "-c", "sleep 1"]), run("/app", &[])];
        let mut b = report("web-b", "n2", "x86_64", &["read"]);
        b.executables = vec![
            run("/bin/sh", &["sh", "/start.sh", "--port=8080"]),
            run("/app", &["app", "serve"]),
        ];
        let m = merge_workload(&[&a, &b], &Overrides::default(), &BTreeMap::new());
        let listed: Vec<(&str, bool, usize)> = m.containers[0]
            .exec_arguments
            .iter()
            .map(|e| (e.path.as_str(), e.any, e.shapes.len()))
            .collect();
        assert_eq!(listed, [("/app", true, 0), ("/bin/sh", false, 2)]);
        assert!(m.containers[0].exec_arguments[1].shapes.contains(&vec![
            "sh".into(),
            "/start.sh".into(),
            "--port=<num>".into()
        ]));
    }

    #[test]
    fn replicas_argument_calls_merge_and_an_override_lifts_them() {
        let socket = |family: u64| imprint_crd::report::SyscallArguments {
            name: "socket".into(),
            calls: vec![vec![imprint_crd::report::ArgumentValue {
                index: 0,
                value: family,
                mask: Some(0xffff_ffff),
            }]],
            overflow: false,
        };
        let mut a = report("web-a", "n1", "x86_64", &["read", "socket"]);
        a.syscalls.arguments = vec![socket(2)];
        let mut b = report("web-b", "n2", "x86_64", &["read", "socket"]);
        b.syscalls.arguments = vec![socket(1)];
        let m = merge_workload(&[&a, &b], &Overrides::default(), &BTreeMap::new());
        let app = &m.containers[0];
        assert_eq!(app.syscall_arguments.len(), 1);
        assert_eq!(
            app.syscall_arguments[0].calls.len(),
            2,
            "the union of the replicas"
        );
        let lifted = Overrides {
            unrestricted_syscalls: vec!["socket".into()],
            ..Overrides::default()
        };
        let m = merge_workload(&[&a, &b], &lifted, &BTreeMap::new());
        assert!(m.containers[0].syscall_arguments.is_empty());
        assert!(m.containers[0].syscalls.contains(&"socket".to_string()));
    }

    #[test]
    fn an_override_adds_calls_and_bad_ones_become_a_condition() {
        let family = |name: &str, index: u32, value: u64| imprint_crd::report::SyscallArguments {
            name: name.into(),
            calls: vec![vec![imprint_crd::report::ArgumentValue {
                index,
                value,
                mask: Some(0xffff_ffff),
            }]],
            overflow: false,
        };
        let mut a = report("web-a", "n1", "x86_64", &["read", "socket", "kill"]);
        a.syscalls.arguments = vec![family("socket", 0, 2)];
        let overrides = Overrides {
            syscall_arguments: vec![
                family("socket", 0, 10),
                family("personality", 0, 0),
                family("kill", 1, 9),
                family("prctl", 6, 1),
            ],
            ..Overrides::default()
        };
        let m = merge_workload(&[&a], &overrides, &BTreeMap::new());
        let app = &m.containers[0];
        let calls = |name: &str| {
            app.syscall_arguments
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.calls.iter().map(|c| c[0].value).collect::<Vec<_>>())
        };
        assert_eq!(calls("socket"), Some(vec![2, 10]), "recorded and added");
        assert_eq!(
            calls("personality"),
            Some(vec![0]),
            "never used: allowed for the added call only"
        );
        assert!(app.syscalls.contains(&"personality".to_string()));
        assert_eq!(
            calls("kill"),
            None,
            "kill's arguments are not recorded: stays allowed by name"
        );
        assert!(app.syscalls.contains(&"kill".to_string()));
        assert_eq!(calls("prctl"), None);
        assert!(!app.syscalls.contains(&"prctl".to_string()));
        let message = &m.conditions[0].message;
        assert!(
            message.contains("\"kill\" (its arguments are not recorded")
                && message.contains("\"prctl\" (argument index 6"),
            "{message}"
        );
    }

    #[test]
    fn new_argument_values_are_new_behavior() {
        let mut a = report("web-a", "n1", "x86_64", &["read", "socket"]);
        let socket = |families: &[u64]| imprint_crd::report::SyscallArguments {
            name: "socket".into(),
            calls: families
                .iter()
                .map(|f| {
                    vec![imprint_crd::report::ArgumentValue {
                        index: 0,
                        value: *f,
                        mask: Some(0xffff_ffff),
                    }]
                })
                .collect(),
            overflow: false,
        };
        a.syscalls.arguments = vec![socket(&[2])];
        let before = merge_workload(&[&a], &Overrides::default(), &BTreeMap::new()).containers;
        a.syscalls.arguments = vec![socket(&[2, 10])];
        let after = merge_workload(&[&a], &Overrides::default(), &BTreeMap::new()).containers;
        assert_eq!(before[0].syscalls, after[0].syscalls);
        assert!(behavior_changed(&before, &after));
        assert!(!behavior_changed(&after, &after));
    }

    #[test]
    fn overrides_add_and_bad_entries_become_a_condition() {
        let mut a = report("web-a", "n1", "x86_64", &["read", "frobnicate"]);
        a.capabilities.push(CapabilityUse {
            name: "CAP_MAGIC".into(),
            needed: true,
            ..Default::default()
        });
        let overrides = Overrides {
            syscalls: vec!["ptrace".into(), "nonsense".into()],
            capabilities: vec!["NET_ADMIN".into()],
            unrestricted_syscalls: vec![],
            syscall_arguments: vec![],
            ignore_paths: vec![],
        };
        let m = merge_workload(&[&a], &overrides, &BTreeMap::new());
        let app = &m.containers[0];
        assert_eq!(app.syscalls, with_baseline(&["ptrace", "read"]));
        assert_eq!(app.capabilities, ["CAP_NET_ADMIN"]);
        assert_eq!(m.conditions.len(), 1);
        let message = &m.conditions[0].message;
        assert!(
            message.contains("frobnicate")
                && message.contains("CAP_MAGIC")
                && message.contains("nonsense"),
            "{message}"
        );
    }

    #[test]
    fn security_context_rules() {
        let mut a = report("web-a", "n1", "x86_64", &["read"]);
        a.executables = vec![exec("/app", 1000, false)];
        a.files = vec![
            file("/data/db", &[Access::Write]),
            file("/tmp/x", &[Access::Create]),
            file("/etc/passwd", &[Access::Read]),
            file("/dev/null", &[Access::Write]),
        ];
        let writable = BTreeMap::from([("app".to_string(), vec!["/data".to_string()])]);
        let m = merge_workload(&[&a], &Overrides::default(), &writable);
        let sc = &m.containers[0].security_context;
        assert!(!sc.allow_privilege_escalation);
        assert!(
            !sc.read_only_root_filesystem,
            "/tmp is on the root filesystem here"
        );
        assert_eq!(m.containers[0].root_writes, ["/tmp/x"]);
        assert!(sc.run_as_non_root);
        assert!(sc.capabilities_add.is_empty());

        let ignore_tmp = Overrides {
            ignore_paths: vec!["/tmp".into()],
            ..Overrides::default()
        };
        let m = merge_workload(&[&a], &ignore_tmp, &writable);
        assert!(m.containers[0].security_context.read_only_root_filesystem);

        a.executables.push(exec("/usr/bin/sudo", 0, true));
        a.capabilities.push(CapabilityUse {
            name: "CAP_NET_BIND_SERVICE".into(),
            needed: true,
            ..Default::default()
        });
        let m = merge_workload(&[&a], &Overrides::default(), &writable);
        let sc = &m.containers[0].security_context;
        assert!(sc.allow_privilege_escalation, "a setuid exec was seen");
        assert!(!sc.run_as_non_root, "uid 0 and a capability were needed");
        assert_eq!(sc.capabilities_add, ["NET_BIND_SERVICE"]);
    }

    #[test]
    fn phase_moves_with_a_fake_clock() {
        let window = 600;
        // First sight: learning, clock starts.
        assert_eq!(
            next_phase(true, false, None, 1000, window),
            (Phase::Learning, 1000)
        );
        // Nothing new, window not over.
        assert_eq!(
            next_phase(false, false, Some(1000), 1500, window),
            (Phase::Learning, 1000)
        );
        // Window over: stable.
        assert_eq!(
            next_phase(false, false, Some(1000), 1600, window),
            (Phase::Stable, 1000)
        );
        // Drops keep it learning.
        assert_eq!(
            next_phase(false, true, Some(1000), 5000, window),
            (Phase::Learning, 1000)
        );
        // Something new: back to learning, clock restarts.
        assert_eq!(
            next_phase(true, false, Some(1000), 5000, window),
            (Phase::Learning, 5000)
        );
    }

    #[test]
    fn an_exec_gaining_file_capabilities_needs_privilege_escalation() {
        let mut a = report("web-a", "n1", "x86_64", &["read"]);
        a.executables = vec![exec("/app", 1000, false)];
        let m = merge_workload(&[&a], &Overrides::default(), &BTreeMap::new());
        assert!(!m.containers[0].security_context.allow_privilege_escalation);
        a.executables.push(Executable {
            file_capabilities: vec!["CAP_NET_BIND_SERVICE".into()],
            ..exec("/usr/local/bin/bind-low", 1000, false)
        });
        let m = merge_workload(&[&a], &Overrides::default(), &BTreeMap::new());
        assert!(
            m.containers[0].security_context.allow_privilege_escalation,
            "no_new_privs would refuse the file's capabilities"
        );
    }

    #[test]
    fn file_operations_out_of_sight_keep_the_root_writable() {
        let mut a = report("web-a", "n1", "x86_64", &["read"]);
        a.executables = vec![exec("/app", 1000, false)];
        let m = merge_workload(&[&a], &Overrides::default(), &BTreeMap::new());
        assert!(m.containers[0].security_context.read_only_root_filesystem);
        let b = report("web-b", "n1", "x86_64", &["read", "io_uring_setup"]);
        let m = merge_workload(&[&a, &b], &Overrides::default(), &BTreeMap::new());
        assert!(
            !m.containers[0].security_context.read_only_root_filesystem,
            "io_uring may have written anywhere"
        );
    }

    #[test]
    fn every_way_of_making_a_file_on_the_root_is_a_write() {
        for access in [
            Access::Symlink,
            Access::Link,
            Access::Mknod,
            Access::Xattr,
            Access::Utime,
        ] {
            let mut a = report("web-a", "n1", "x86_64", &["read"]);
            a.executables = vec![exec("/app", 1000, false)];
            a.files = vec![file("/run/app.sock", &[access])];
            let m = merge_workload(&[&a], &Overrides::default(), &BTreeMap::new());
            assert!(
                !m.containers[0].security_context.read_only_root_filesystem,
                "{access:?} on the root filesystem"
            );
        }
    }

    #[test]
    fn a_report_from_a_node_missing_a_hook_keeps_the_profile_learning() {
        let complete = report("web-a", "n1", "x86_64", &["read"]);
        let merged = merge_workload(&[&complete], &Overrides::default(), &BTreeMap::new());
        assert!(merged.incomplete.is_empty());
        let mut blind = report("web-b", "n2", "x86_64", &["read"]);
        blind.stats.missing_hooks = vec!["tp_btf/cap_capable: capability checks".into()];
        let merged = merge_workload(
            &[&complete, &blind],
            &Overrides::default(),
            &BTreeMap::new(),
        );
        assert_eq!(merged.incomplete, ["HooksMissing"]);
        assert!(merged.conditions.iter().any(|c| c.type_ == "HooksMissing"));
    }

    #[test]
    fn changes_are_detected_on_behavior_not_on_counts() {
        let a = report("web-a", "n1", "x86_64", &["read"]);
        let b = report("web-b", "n1", "x86_64", &["read"]);
        let one = merge_workload(&[&a], &Overrides::default(), &BTreeMap::new()).containers;
        let two = merge_workload(&[&a, &b], &Overrides::default(), &BTreeMap::new()).containers;
        assert!(
            !behavior_changed(&one, &two),
            "another replica doing the same is no change"
        );
        let c = report("web-c", "n1", "x86_64", &["read", "mmap"]);
        let three = merge_workload(&[&a, &c], &Overrides::default(), &BTreeMap::new()).containers;
        assert!(behavior_changed(&two, &three));
    }
}
