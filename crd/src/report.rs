//! `ContainerBehaviorReport`: what one node saw one container of one pod do
//! (or, on a plain host, one cgroup or one recorded command).

use std::collections::BTreeSet;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed behavior of one container, as recorded from the kernel.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "imprint.dev",
    version = "v1alpha1",
    kind = "ContainerBehaviorReport",
    plural = "containerbehaviorreports",
    shortname = "cbr",
    category = "imprint",
    namespaced,
    derive = "PartialEq",
    printcolumn = r#"{"name":"Pod","type":"string","jsonPath":".spec.subject.pod"}"#,
    printcolumn = r#"{"name":"Container","type":"string","jsonPath":".spec.subject.container"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.subject.node"}"#,
    printcolumn = r#"{"name":"Syscalls","type":"integer","jsonPath":".spec.stats.syscalls"}"#,
    printcolumn = r#"{"name":"Files","type":"integer","jsonPath":".spec.stats.files"}"#,
    printcolumn = r#"{"name":"Execs","type":"integer","jsonPath":".spec.stats.executables"}"#,
    printcolumn = r#"{"name":"Conns","type":"integer","jsonPath":".spec.stats.connections"}"#,
    printcolumn = r#"{"name":"Caps","type":"integer","jsonPath":".spec.stats.capabilities"}"#,
    printcolumn = r#"{"name":"Drops","type":"integer","priority":1,"jsonPath":".spec.stats.drops.total"}"#,
    printcolumn = r#"{"name":"Covered","type":"string","jsonPath":".spec.covered.profile"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ContainerBehaviorReportSpec {
    /// Who was observed.
    pub subject: Subject,
    /// When it was observed.
    #[serde(default)]
    pub window: Window,
    /// Syscalls made, by name, for one architecture.
    pub syscalls: SyscallSet,
    /// Programs executed.
    #[serde(default)]
    pub executables: Vec<Executable>,
    /// Files opened or changed, by normalised path.
    #[serde(default)]
    pub files: Vec<FileAccess>,
    /// Network endpoints used.
    #[serde(default)]
    pub network: Vec<NetworkEndpoint>,
    /// Capabilities checked.
    #[serde(default)]
    pub capabilities: Vec<CapabilityUse>,
    /// Counts, losses and truncation.
    #[serde(default)]
    pub stats: Stats,
    /// Set when the report holds only what the workload's profile did not
    /// hold yet: what the container did is this report's lists plus what
    /// the profile of this uid has learnt (its containers' lists and
    /// `recorded`). `stats` still count everything the container did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covered: Option<Coverage>,
}

/// The profile a covered report leaves out what it holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    /// The BehaviorProfile's name (in the report's namespace).
    pub profile: String,
    /// Its uid: a profile of the same name made later covers nothing of
    /// this report.
    pub uid: String,
}

/// Who was observed: a pod container, a host cgroup or a recorded command.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// Node (host name) the report comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Namespace of the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Pod UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Container name in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Runtime's container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// Labels of a Docker or Podman container, as its runtime lists them
    /// (at most 64, the first by name).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Owning workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
    /// Path of the cgroup in the unified hierarchy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Command line of a recorded command (`imprint record -- CMD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Mount paths the container may write (volumes not mounted read-only),
    /// from the pod spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writable_mounts: Vec<String>,
    /// The container's securityContext as the pod spec sets it (pod-level
    /// fields folded in), to compare with the recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<CurrentSecurityContext>,
}

/// The securityContext a container runs with, as far as imprint compares it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentSecurityContext {
    /// `privileged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// `allowPrivilegeEscalation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// `readOnlyRootFilesystem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// `runAsNonRoot` (container or pod level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// `capabilities.add`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_add: Vec<String>,
    /// `capabilities.drop`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_drop: Vec<String>,
    /// `seccompProfile` as `Type` or `Localhost/<path>` (container or pod level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
}

/// The workload owning a pod.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// Deployment, StatefulSet, DaemonSet, Job, CronJob or Pod.
    pub kind: String,
    /// Name of the workload.
    pub name: String,
}

/// Observation window, RFC 3339 times.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// First event seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Last event seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// Syscall names of one architecture, sorted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyscallSet {
    /// Kernel architecture name (`x86_64`, `aarch64`).
    pub arch: String,
    /// Syscall names, sorted, without duplicates.
    #[serde(default)]
    pub names: Vec<String>,
    /// Numbers with no name in the syscall table (kept, never dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_numbers: Vec<u32>,
    /// The integer arguments seen, for the few syscalls whose arguments are
    /// recorded (socket, socketpair, clone, unshare, personality, prctl,
    /// ioctl), sorted by name. Reports without it (older ones) restrict no
    /// arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<SyscallArguments>,
}

/// The argument values one syscall was called with.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyscallArguments {
    /// Syscall name.
    pub name: String,
    /// Each distinct call seen, as the values of its recorded arguments
    /// (all of one call hold at once), sorted.
    #[serde(default)]
    pub calls: Vec<Vec<ArgumentValue>>,
    /// More distinct calls were made than are recorded: its arguments
    /// cannot be restricted to the ones seen.
    #[serde(default, skip_serializing_if = "is_false")]
    pub overflow: bool,
}

/// One argument of a call: `(argument & mask) == value`.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ArgumentValue {
    /// Argument position, from 0.
    pub index: u32,
    /// The value (of the masked bits).
    pub value: u64,
    /// The bits compared (absent: the whole argument). socket's type leaves
    /// out SOCK_NONBLOCK and SOCK_CLOEXEC; clone's flags keep only the
    /// namespace bits; `int` arguments keep their low 32 bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<u64>,
}

/// A program executed with one argument vector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Executable {
    /// Absolute path of the executed file, as the kernel resolved it.
    pub path: String,
    /// Arguments (argv), possibly cut at the kernel's bound.
    #[serde(default)]
    pub args: Vec<String>,
    /// Times executed.
    pub count: u64,
    /// The file has the set-user-id bit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub setuid: bool,
    /// The file has the set-group-id bit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub setgid: bool,
    /// Capabilities the exec gained from the file's capabilities
    /// (`setcap`), by name: privilege a process without
    /// `allowPrivilegeEscalation` cannot gain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_capabilities: Vec<String>,
    /// Lowest effective uid after an exec (0 when any ran as root).
    #[serde(default)]
    pub euid: u32,
}

impl Executable {
    /// Whether it gained privilege: set-user-id, set-group-id or file
    /// capabilities.
    pub fn gains_privilege(&self) -> bool {
        self.setuid || self.setgid || !self.file_capabilities.is_empty()
    }
}

/// Accesses to one (normalised) path.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileAccess {
    /// Absolute path, normalised (see the README's path normalisation).
    pub path: String,
    /// Kinds of access, sorted.
    pub access: BTreeSet<Access>,
}

/// A kind of file access.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    /// Opened for reading.
    Read,
    /// Opened for writing.
    Write,
    /// Created by an open.
    Create,
    /// Truncated by an open.
    Truncate,
    /// Executed.
    Exec,
    /// Unlinked.
    Unlink,
    /// Directory made.
    Mkdir,
    /// Directory removed.
    Rmdir,
    /// Renamed away.
    RenameFrom,
    /// Renamed to.
    RenameTo,
    /// Mode changed.
    Chmod,
    /// Owner changed.
    Chown,
    /// Opened with neither read nor write (O_PATH).
    Path,
    /// A symbolic link made at this path.
    Symlink,
    /// A hard link made at this path.
    Link,
    /// A device, FIFO or socket file made at this path (mknod, mkfifo,
    /// binding a unix socket).
    Mknod,
    /// Extended attributes set or removed.
    Xattr,
    /// Access or modification times set.
    Utime,
}

impl Access {
    /// Whether the access changes the file system.
    pub fn is_write(self) -> bool {
        !matches!(self, Access::Read | Access::Exec | Access::Path)
    }
}

/// A network endpoint a container used.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkEndpoint {
    /// Outbound (it connected or sent), inbound (it accepted) or listening.
    pub direction: Direction,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Peer address (outbound, inbound) or local address (listening).
    pub address: String,
    /// Peer port (outbound), local port (inbound, listening).
    pub port: u16,
    /// The pod or Service behind the peer address, when the node agent
    /// could resolve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
}

/// The Kubernetes object behind a network address.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    /// `Pod`, `Service`, or `Node` (an address of the agent's own node:
    /// the kubelet's probes, a host process; its name is the node's).
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// The workload owning the pod (for a Service: the workload of the pods
    /// it selects, when they have one owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
}

/// Direction of a network endpoint.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// The container connected or sent to the address.
    Outbound,
    /// The container accepted a connection from the address.
    Inbound,
    /// The container listened on (or bound, for UDP) the address.
    Listening,
}

/// Transport protocol.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Another IP protocol (ICMP sockets, SCTP...).
    Other,
}

/// How a capability was checked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapabilityUse {
    /// Capability name, `CAP_*`.
    pub name: String,
    /// A granted, audited check: the workload needs it.
    pub needed: bool,
    /// An audited check was denied.
    #[serde(default, skip_serializing_if = "is_false")]
    pub denied: bool,
    /// No-audit probes were made (the kernel asked without requiring it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub probed: bool,
    /// Granted checks made only by the container runtime while it set the
    /// container up (before the container's program started): not needed
    /// by the workload.
    #[serde(default, skip_serializing_if = "is_false")]
    pub runtime: bool,
}

/// Counts, losses and truncation of a report.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Events received for this subject.
    #[serde(default)]
    pub events: u64,
    /// Number of syscall names.
    #[serde(default)]
    pub syscalls: u64,
    /// Number of file entries.
    #[serde(default)]
    pub files: u64,
    /// Number of executable entries.
    #[serde(default)]
    pub executables: u64,
    /// Number of network entries.
    #[serde(default)]
    pub connections: u64,
    /// Number of capability entries.
    #[serde(default)]
    pub capabilities: u64,
    /// What was lost.
    #[serde(default)]
    pub drops: Drops,
    /// Entries folded or cut to keep the report bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
    /// Hooks that were not attached on the node that wrote the report,
    /// each with what the report lacks without it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_hooks: Vec<String>,
    /// Losses on the node that no cgroup could be charged with, counted
    /// while this container was recorded: any of them may be its own.
    #[serde(default, skip_serializing_if = "NodeLosses::is_empty")]
    pub node_losses: NodeLosses,
    /// Whether the container was recorded from its start (`false`: it
    /// started before the agent, so the runtime's start-up syscalls are
    /// missing; absent: unknown, an older writer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_observed: Option<bool>,
    /// Periods the container lived through without being recorded (the
    /// agent restarting or upgraded); `from` is the last event seen before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrecorded: Vec<Period>,
}

impl Stats {
    /// The counts of distinct syscalls, files, executables, connections
    /// and capabilities, in that order (as the lists are counted).
    fn counts(&self) -> [u64; 5] {
        [
            self.syscalls,
            self.files,
            self.executables,
            self.connections,
            self.capabilities,
        ]
    }

    /// [`Self::counts`], to change.
    fn counts_mut(&mut self) -> [&mut u64; 5] {
        [
            &mut self.syscalls,
            &mut self.files,
            &mut self.executables,
            &mut self.connections,
            &mut self.capabilities,
        ]
    }
}

/// Losses on a node that could not be attributed to one cgroup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeLosses {
    /// Losses whose cgroup could not be counted (the per-cgroup loss map
    /// was full).
    #[serde(default)]
    pub unattributed_drops: u64,
    /// Cgroups whose kernel storage could not be created (their syscalls
    /// were not recorded).
    #[serde(default)]
    pub storage_failures: u64,
    /// Syscalls whose number is beyond what the kernel side records.
    #[serde(default)]
    pub syscalls_out_of_range: u64,
}

impl NodeLosses {
    /// Whether nothing was lost.
    pub fn is_empty(&self) -> bool {
        *self == NodeLosses::default()
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &NodeLosses) {
        self.unattributed_drops = self
            .unattributed_drops
            .saturating_add(other.unattributed_drops);
        self.storage_failures = self.storage_failures.saturating_add(other.storage_failures);
        self.syscalls_out_of_range = self
            .syscalls_out_of_range
            .saturating_add(other.syscalls_out_of_range);
    }

    /// What grew from `before` to `self` (counters only grow).
    pub fn since(&self, before: &NodeLosses) -> NodeLosses {
        NodeLosses {
            unattributed_drops: self
                .unattributed_drops
                .saturating_sub(before.unattributed_drops),
            storage_failures: self
                .storage_failures
                .saturating_sub(before.storage_failures),
            syscalls_out_of_range: self
                .syscalls_out_of_range
                .saturating_sub(before.syscalls_out_of_range),
        }
    }
}

/// A period of time, RFC 3339 times.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    /// Start.
    pub from: String,
    /// End.
    pub to: String,
}

/// Events lost in the kernel for this subject.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Drops {
    /// Sum of the counters below.
    pub total: u64,
    /// Events lost to a full ring buffer.
    #[serde(default)]
    pub ring_buffer: u64,
    /// Entries lost to a full kernel map.
    #[serde(default)]
    pub map_full: u64,
    /// Paths cut at the kernel's walk limit.
    #[serde(default)]
    pub path_truncated: u64,
    /// Kernel reads that failed.
    #[serde(default)]
    pub read_failures: u64,
    /// When the agent last saw these counters grow (RFC 3339). A loss
    /// keeps a profile Learning until a stability window has passed since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<String>,
}

impl Drops {
    /// The sum of the counters (what `total` holds once counts are updated).
    pub fn counted(&self) -> u64 {
        self.ring_buffer + self.map_full + self.path_truncated + self.read_failures
    }

    /// Whether anything was lost (by the counters, whatever `total` says).
    pub fn lost(&self) -> bool {
        self.counted() > 0
    }
}

/// The earlier of two RFC 3339 times (same format, so they sort as text).
pub fn earliest(a: &Option<String>, b: &Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b).clone()),
        (a, b) => a.clone().or(b.clone()),
    }
}

/// The later of two RFC 3339 times.
pub fn latest(a: &Option<String>, b: &Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b).clone()),
        (a, b) => a.clone().or(b.clone()),
    }
}

/// Appends the items of `from` that `into` lacks, in their order.
fn extend_unique<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T]) {
    for item in from {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

/// Adds a `stats.truncated` note, replacing an earlier note of the same
/// kind (the same words, other counts): notes say what the latest bounding
/// did, and never pile up in a report folded again and again.
pub fn add_note(notes: &mut Vec<String>, note: &str) {
    let kind = |n: &str| {
        n.chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
    };
    let wanted = kind(note);
    notes.retain(|n| kind(n) != wanted);
    notes.push(note.to_string());
}

/// Adds `other`'s argument values to `into`: the union of the calls per
/// syscall, an overflow on either side stays.
pub fn merge_arguments(into: &mut Vec<SyscallArguments>, other: &[SyscallArguments]) {
    for theirs in other {
        match into.iter_mut().find(|a| a.name == theirs.name) {
            Some(ours) => {
                let mut calls: BTreeSet<Vec<ArgumentValue>> = ours.calls.drain(..).collect();
                calls.extend(theirs.calls.iter().cloned());
                ours.calls = calls.into_iter().collect();
                ours.overflow |= theirs.overflow;
            }
            None => into.push(theirs.clone()),
        }
    }
    into.sort_by(|a, b| a.name.cmp(&b.name));
}

/// For serde: leave a false flag out.
pub(crate) fn is_false(value: &bool) -> bool {
    !*value
}

impl ContainerBehaviorReportSpec {
    /// Adds everything `other` saw to this report (a union: same subject,
    /// another observation period, such as before an agent restart).
    /// Counts and drops add up; the window widens.
    pub fn absorb(&mut self, other: &ContainerBehaviorReportSpec) {
        let mut names: BTreeSet<String> = self.syscalls.names.drain(..).collect();
        names.extend(other.syscalls.names.iter().cloned());
        self.syscalls.names = names.into_iter().collect();
        let mut unknown: BTreeSet<u32> = self.syscalls.unknown_numbers.drain(..).collect();
        unknown.extend(other.syscalls.unknown_numbers.iter().copied());
        self.syscalls.unknown_numbers = unknown.into_iter().collect();
        if self.syscalls.arch.is_empty() {
            self.syscalls.arch = other.syscalls.arch.clone();
        }
        merge_arguments(&mut self.syscalls.arguments, &other.syscalls.arguments);

        for exec in &other.executables {
            match self
                .executables
                .iter_mut()
                .find(|e| e.path == exec.path && e.args == exec.args)
            {
                Some(known) => {
                    known.count = known.count.saturating_add(exec.count);
                    known.euid = known.euid.min(exec.euid);
                    known.setuid |= exec.setuid;
                    known.setgid |= exec.setgid;
                    extend_unique(&mut known.file_capabilities, &exec.file_capabilities);
                    known.file_capabilities.sort();
                }
                None => self.executables.push(exec.clone()),
            }
        }
        self.executables
            .sort_by(|a, b| (&a.path, &a.args).cmp(&(&b.path, &b.args)));

        let mut files: std::collections::BTreeMap<String, BTreeSet<Access>> =
            self.files.drain(..).map(|f| (f.path, f.access)).collect();
        for file in &other.files {
            files
                .entry(file.path.clone())
                .or_default()
                .extend(file.access.iter().copied());
        }
        self.files = files
            .into_iter()
            .map(|(path, access)| FileAccess { path, access })
            .collect();

        let mut network: BTreeSet<NetworkEndpoint> = self.network.drain(..).collect();
        for endpoint in &other.network {
            // An endpoint learnt again with a resolved peer replaces the
            // unresolved one.
            if endpoint.peer.is_some() {
                network.remove(&NetworkEndpoint {
                    peer: None,
                    ..endpoint.clone()
                });
            } else if network.iter().any(|e| {
                e.peer.is_some()
                    && NetworkEndpoint {
                        peer: None,
                        ..e.clone()
                    } == *endpoint
            }) {
                continue;
            }
            network.insert(endpoint.clone());
        }
        self.network = network.into_iter().collect();

        for cap in &other.capabilities {
            match self.capabilities.iter_mut().find(|c| c.name == cap.name) {
                Some(known) => {
                    known.needed |= cap.needed;
                    known.denied |= cap.denied;
                    known.probed |= cap.probed;
                    known.runtime |= cap.runtime;
                }
                None => self.capabilities.push(cap.clone()),
            }
        }
        self.capabilities.sort_by(|a, b| a.name.cmp(&b.name));

        // A union with a covered report is covered by the same profile; its
        // counts are at least each one's (the lists cannot tell more).
        if self.covered.is_none() {
            self.covered = other.covered.clone();
        }
        if self.covered.is_some() {
            for (ours, theirs) in self
                .stats
                .counts_mut()
                .into_iter()
                .zip(other.stats.counts())
            {
                *ours = (*ours).max(theirs);
            }
        }
        self.window.first_seen = earliest(&self.window.first_seen, &other.window.first_seen);
        self.window.last_seen = latest(&self.window.last_seen, &other.window.last_seen);
        self.stats.events = self.stats.events.saturating_add(other.stats.events);
        let (d, o) = (&mut self.stats.drops, &other.stats.drops);
        // A loss of unknown time stays unknown in the union.
        d.last_at = match (d.lost(), o.lost()) {
            (true, true) if d.last_at.is_none() || o.last_at.is_none() => None,
            (true, true) => latest(&d.last_at, &o.last_at),
            (true, false) => d.last_at.clone(),
            (false, _) => o.last_at.clone(),
        };
        d.ring_buffer = d.ring_buffer.saturating_add(o.ring_buffer);
        d.map_full = d.map_full.saturating_add(o.map_full);
        d.path_truncated = d.path_truncated.saturating_add(o.path_truncated);
        d.read_failures = d.read_failures.saturating_add(o.read_failures);
        let (s, o) = (&mut self.stats, &other.stats);
        for note in &o.truncated {
            add_note(&mut s.truncated, note);
        }
        extend_unique(&mut s.missing_hooks, &o.missing_hooks);
        s.node_losses.add(&o.node_losses);
        // One run recorded from its start is enough: the runtime's
        // start-up syscalls are in.
        s.start_observed = match (s.start_observed, o.start_observed) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (None, None) => None,
            _ => Some(false),
        };
        extend_unique(&mut s.unrecorded, &o.unrecorded);
        s.unrecorded.sort();
        self.update_counts();
    }

    /// Recomputes the counts in `stats` from the lists. A covered report's
    /// lists hold only what its profile lacked: its counts (the
    /// container's) are kept, never below what its lists hold.
    pub fn update_counts(&mut self) {
        let counted = [
            self.syscalls.names.len(),
            self.files.len(),
            self.executables.len(),
            self.network.len(),
            self.capabilities.len(),
        ];
        let covered = self.covered.is_some();
        for (count, listed) in self.stats.counts_mut().into_iter().zip(counted) {
            *count = if covered {
                (*count).max(listed as u64)
            } else {
                listed as u64
            };
        }
        let d = &mut self.stats.drops;
        d.total = d.counted();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        syscalls: &[&str],
        file: &str,
        access: Access,
        first: &str,
    ) -> ContainerBehaviorReportSpec {
        let mut spec = ContainerBehaviorReportSpec {
            syscalls: SyscallSet {
                arch: "x86_64".into(),
                names: syscalls.iter().map(|s| s.to_string()).collect(),
                unknown_numbers: Vec::new(),
                arguments: Vec::new(),
            },
            files: vec![FileAccess {
                path: file.into(),
                access: [access].into(),
            }],
            executables: vec![Executable {
                path: "/bin/sh".into(),
                args: vec!["sh".into()],
                count: 2,
                ..Executable::default()
            }],
            window: Window {
                first_seen: Some(first.into()),
                last_seen: Some(first.into()),
            },
            ..ContainerBehaviorReportSpec::default()
        };
        spec.stats.events = 10;
        spec.stats.drops.ring_buffer = 1;
        spec.stats.drops.last_at = Some(first.into());
        spec.update_counts();
        spec
    }

    #[test]
    fn argument_calls_merge_as_a_union_and_an_overflow_stays() {
        let call = |family: u64| {
            vec![ArgumentValue {
                index: 0,
                value: family,
                mask: Some(0xffff_ffff),
            }]
        };
        let socket = |calls: Vec<Vec<ArgumentValue>>, overflow| SyscallArguments {
            name: "socket".into(),
            calls,
            overflow,
        };
        let mut ours = vec![socket(vec![call(2)], false)];
        let theirs = [
            socket(vec![call(1), call(2)], true),
            SyscallArguments {
                name: "prctl".into(),
                calls: vec![call(3)],
                overflow: false,
            },
        ];
        merge_arguments(&mut ours, &theirs);
        assert_eq!(
            ours.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["prctl", "socket"]
        );
        assert_eq!(ours[1], socket(vec![call(1), call(2)], true));
    }

    #[test]
    fn a_covered_report_keeps_the_containers_counts() {
        let mut covered = spec(
            &["ptrace"],
            "/etc/passwd",
            Access::Write,
            "2026-01-02T00:00:00.000Z",
        );
        covered.covered = Some(Coverage {
            profile: "deployment-web".into(),
            uid: "u".into(),
        });
        covered.stats.syscalls = 100;
        covered.stats.files = 70;
        covered.update_counts();
        assert_eq!((covered.stats.syscalls, covered.stats.files), (100, 70));
        let mut whole = spec(
            &["read", "write"],
            "/etc/passwd",
            Access::Read,
            "2026-01-01T00:00:00.000Z",
        );
        whole.update_counts();
        assert_eq!(whole.stats.syscalls, 2, "a whole report counts its lists");
        whole.absorb(&covered);
        assert_eq!(whole.covered, covered.covered, "the union is covered");
        assert_eq!((whole.stats.syscalls, whole.stats.files), (100, 70));
        let mut many = covered.clone();
        many.syscalls.names = (0..150).map(|n| format!("s{n}")).collect();
        many.update_counts();
        assert_eq!(many.stats.syscalls, 150, "never below what the lists hold");
    }

    #[test]
    fn absorb_is_a_union_that_adds_counts() {
        let mut a = spec(
            &["read", "write"],
            "/etc/passwd",
            Access::Read,
            "2026-01-02T00:00:00.000Z",
        );
        a.executables[0].euid = 1000;
        let b = spec(
            &["openat", "read"],
            "/etc/passwd",
            Access::Write,
            "2026-01-01T00:00:00.000Z",
        );
        assert_eq!(b.executables[0].euid, 0);
        a.absorb(&b);
        assert_eq!(a.syscalls.names, ["openat", "read", "write"]);
        assert_eq!(a.files.len(), 1);
        assert_eq!(a.files[0].access, [Access::Read, Access::Write].into());
        assert_eq!(a.executables.len(), 1);
        assert_eq!(a.executables[0].count, 4);
        // Run as root in one period: as root in the union.
        assert_eq!(a.executables[0].euid, 0);
        assert_eq!(a.stats.events, 20);
        assert_eq!(a.stats.drops.total, 2);
        // Both lost something at a known time: the later one.
        assert_eq!(
            a.stats.drops.last_at.as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
        // A loss of unknown time (an older agent) stays unknown.
        let mut unknown = b.clone();
        unknown.stats.drops.last_at = None;
        a.absorb(&unknown);
        assert_eq!(a.stats.drops.last_at, None);
        assert_eq!(a.stats.syscalls, 3);
        assert_eq!(
            a.window.first_seen.as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
        assert_eq!(
            a.window.last_seen.as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
    }

    #[test]
    fn a_resolved_peer_replaces_the_bare_address() {
        let bare = NetworkEndpoint {
            direction: Direction::Outbound,
            protocol: Protocol::Tcp,
            address: "10.96.0.10".into(),
            port: 80,
            peer: None,
        };
        let resolved = NetworkEndpoint {
            peer: Some(Peer {
                kind: "Service".into(),
                namespace: "web".into(),
                name: "nginx".into(),
                workload: None,
            }),
            ..bare.clone()
        };
        let mut a = ContainerBehaviorReportSpec {
            network: vec![bare.clone()],
            ..ContainerBehaviorReportSpec::default()
        };
        a.absorb(&ContainerBehaviorReportSpec {
            network: vec![resolved.clone()],
            ..ContainerBehaviorReportSpec::default()
        });
        assert_eq!(a.network, std::slice::from_ref(&resolved));
        a.absorb(&ContainerBehaviorReportSpec {
            network: vec![bare],
            ..ContainerBehaviorReportSpec::default()
        });
        assert_eq!(a.network, [resolved]);
    }
}
