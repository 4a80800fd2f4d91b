//! `BehaviorProfile`: one per workload, made by the controller. `spec` is
//! the user's (overrides, stability window); `status` is the controller's:
//! the merged behavior of each container, the phase, and the recommendation.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::report::{FileAccess, NetworkEndpoint, SyscallArguments, WorkloadRef, is_false};

/// Learnt least privilege of one workload.
///
/// The API server checks (CEL) that the workload never changes (the
/// controller keys everything on it) and that the stability window is a
/// duration it can read.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "imprint.dev",
    version = "v1alpha1",
    kind = "BehaviorProfile",
    plural = "behaviorprofiles",
    shortname = "bp",
    category = "imprint",
    namespaced,
    status = "BehaviorProfileStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.workload.kind"}"#,
    printcolumn = r#"{"name":"Workload","type":"string","jsonPath":".spec.workload.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Guarding","type":"boolean","jsonPath":".status.guarding"}"#,
    printcolumn = r#"{"name":"Reports","type":"integer","jsonPath":".status.reports"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.nodes"}"#,
    printcolumn = r#"{"name":"NetworkPolicy","type":"string","jsonPath":".status.networkPolicy.state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BehaviorProfileSpec {
    /// The workload profiled.
    #[x_kube(validation = Rule::new("self == oldSelf").message("the workload of a BehaviorProfile cannot change"))]
    pub workload: WorkloadRef,
    /// What to allow or ignore beyond what was observed.
    #[serde(default)]
    pub overrides: Overrides,
    /// How long nothing new must be seen before the profile is Stable
    /// (`10m`, `1h`); the controller's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(s|m|h)$')").message("a duration in seconds, minutes or hours, such as 90s, 10m or 1h"))]
    pub stability_window: Option<String>,
    /// `Auto` (the default): learn until Stable, then guard; `Learn`:
    /// always learn (new behavior joins the profile); `Guard`: never learn
    /// beyond what the profile holds. While guarding, behavior outside the
    /// profile is an anomaly: alerted, listed in status, never allowed.
    #[serde(default)]
    pub mode: Mode,
    /// Anomalies accepted: allowed from now on, alerted no more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub accept: Vec<Accepted>,
}

/// Whether a profile learns or guards.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Mode {
    /// Learn until Stable, then guard.
    #[default]
    Auto,
    /// Always learn.
    Learn,
    /// Never learn beyond what the profile holds.
    Guard,
}

/// An anomaly the user accepts (see `status.containers[].anomalies`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// The container (every container of the workload when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// What kind of item.
    pub kind: AnomalyKind,
    /// The item, as the anomaly names it: a program's path, a file's
    /// path, a syscall, a `CAP_*` name, or `direction protocol address
    /// port` of an endpoint, `PATH ["arg0","arg1",...]` for the
    /// arguments of a program (their shape, as anomalies show it), or
    /// `SYSCALL [{"index":0,"value":10,"mask":4294967295}]` for a call.
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// The kind of an anomaly.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum AnomalyKind {
    /// A program executed.
    #[default]
    Exec,
    /// A file written or changed.
    File,
    /// A syscall made.
    Syscall,
    /// A capability needed.
    Capability,
    /// A network endpoint used.
    Network,
    /// A program the profile ran, with arguments of a shape it never
    /// used (value: the path, a space, the shape as a JSON array).
    ExecArguments,
    /// A syscall the profile restricts to the calls it made, called with
    /// other arguments (value: the syscall, a space, the call as a JSON
    /// array of `{index, value, mask}`).
    SyscallArguments,
}

/// Behavior seen outside a guarded profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    /// What kind of item.
    pub kind: AnomalyKind,
    /// The item (as `spec.accept` names it).
    pub value: String,
    /// Reports (pods, runs) in which it was seen.
    pub count: u64,
    /// First seen (RFC 3339), from those reports' windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Last seen (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// The user's additions and exclusions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Overrides {
    /// Syscalls to allow although not observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<String>,
    /// Capabilities to add although not observed as needed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Syscalls allowed by name although their recorded arguments would
    /// restrict them to the calls seen (lifts their argument rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrestricted_syscalls: Vec<String>,
    /// Calls allowed beside the recorded ones, for syscalls whose arguments
    /// the agent records (`socket`, `socketpair`, `clone`, `unshare`,
    /// `personality`, `prctl`, `ioctl`, `mmap`, `mprotect`,
    /// `pkey_mprotect`), in the form of a report's
    /// `spec.syscalls.arguments`. Such a syscall never recorded is allowed
    /// for these calls only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscall_arguments: Vec<crate::report::SyscallArguments>,
    /// Path prefixes whose accesses are ignored (for the read-only root
    /// filesystem rule, for example a volume the controller cannot see).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_paths: Vec<String>,
}

/// Learning until nothing new was seen for the stability window.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// New behavior was seen recently, or a report had drops.
    #[default]
    Learning,
    /// Nothing new for the stability window, and no drops.
    Stable,
}

/// What the controller observed and recommends.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BehaviorProfileStatus {
    /// Learning or Stable.
    pub phase: Phase,
    /// Reports merged.
    pub reports: u64,
    /// Distinct pods (replicas, over time) seen.
    pub replicas: u64,
    /// Distinct nodes seen.
    pub nodes: u64,
    /// When the merged behavior last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<String>,
    /// Learning has ended: behavior outside the profile is an anomaly,
    /// not learnt (`spec.mode` Guard, or Auto once Stable).
    #[serde(default)]
    pub guarding: bool,
    /// Per container.
    #[serde(default)]
    pub containers: Vec<ContainerProfile>,
    /// Problems met while merging (skipped entries, drops).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ProfileCondition>,
    /// The NetworkPolicy derived from the workload's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicyStatus>,
}

/// The NetworkPolicy imprint derives for a workload: its pods' own
/// selector, a rule per peer seen (workload selectors, a Service's pods on
/// their target ports, DNS, the API server, other addresses as ipBlocks).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyStatus {
    /// `Proposed`: in this status only; `Applied`: a NetworkPolicy of
    /// imprint's (named below) holds it; `Held`: the profile is Stable but
    /// the policy is not applied (the conditions say why).
    pub state: String,
    /// The applied NetworkPolicy's name (in the profile's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ingress rules (one per peer).
    pub ingress_rules: u32,
    /// Egress rules (one per peer).
    pub egress_rules: u32,
    /// Listening ports no connection was seen to while learning
    /// (`8080/TCP`): the policy would refuse them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unobserved_listeners: Vec<String>,
    /// What the policy leaves out or makes wider, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The policy's spec, as a `networking.k8s.io/v1` NetworkPolicy takes it.
    #[schemars(schema_with = "any_object")]
    pub spec: serde_json::Value,
}

/// An object of any fields (a Kubernetes type's JSON kept as it is).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// The merged behavior of one container of the workload.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerProfile {
    /// Container name.
    pub name: String,
    /// Kernel architectures of the nodes seen.
    pub architectures: Vec<String>,
    /// Syscalls allowed: observed on any replica, the baseline every profile
    /// allows (rt_sigreturn, restart_syscall, exit, the vDSO fallbacks),
    /// plus overrides.
    pub syscalls: Vec<String>,
    /// Capabilities needed (`CAP_*`), plus overrides.
    pub capabilities: Vec<String>,
    /// Syscalls of `syscalls` allowed only for these calls (their recorded
    /// arguments); the others are allowed by name. Where `clone` is here,
    /// `clone3` fails with ENOSYS (libc falls back to `clone`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscall_arguments: Vec<SyscallArguments>,
    /// Programs executed.
    #[serde(default)]
    pub executables: Vec<String>,
    /// The argument shapes each program ran with (bounded: a program past
    /// 16 shapes, or the largest ones once all shapes pass 16 KiB, allows
    /// any arguments). A program listed in `executables` but not here
    /// allows any arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec_arguments: Vec<ExecArguments>,
    /// Paths written outside writable mounts (why the root filesystem must stay writable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_writes: Vec<String>,
    /// Network endpoints.
    #[serde(default)]
    pub network: Vec<NetworkEndpoint>,
    /// Files by access (bounded: past 1,024 paths they fold into their
    /// directory, `dir/*`, then their top directory, `/top/**`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileAccess>,
    /// While guarding: the most recent items seen outside the profile (at
    /// most 20; the `Anomalies` condition counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<Anomaly>,
    /// Name of the generated SeccompProfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
    /// The recommended securityContext.
    pub security_context: RecommendedSecurityContext,
    /// How the recommendation differs from the workload's current securityContext.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub difference: Vec<String>,
    /// What the reports recorded that the lists above do not say as they
    /// recorded it (the lists add the baseline and the overrides). With
    /// `files`, `network`, `executables` and `execArguments` it is
    /// everything learnt of the container: a report covered by this profile
    /// (`spec.covered`) holds only what is not in them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Recorded>,
}

/// The part of what a container's reports recorded that a
/// [`ContainerProfile`]'s lists do not keep as recorded.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    /// Syscalls recorded, per architecture, with the calls of those whose
    /// arguments are recorded (an entry with `overflow`: more calls than
    /// are kept; a recorded syscall without an entry: used without its
    /// arguments recorded).
    #[serde(default)]
    pub syscalls: Vec<crate::report::SyscallSet>,
    /// Capabilities needed (`CAP_*`), without overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// A program gained privilege (setuid, setgid, file capabilities).
    #[serde(default, skip_serializing_if = "is_false")]
    pub escalates: bool,
    /// A program ran as uid 0.
    #[serde(default, skip_serializing_if = "is_false")]
    pub runs_as_root: bool,
}

/// The argument vectors one program ran with, as shapes: numbers become
/// `<num>`, addresses `<ip>`, long hexadecimal ids `<id>`, paths are
/// normalised as file paths are (`/proc/*/...`, temporary names), and the
/// value of an `--option=value` is shaped the same way.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecArguments {
    /// Absolute path of the program.
    pub path: String,
    /// Any arguments are allowed (past the bound, or when a report had
    /// them cut).
    #[serde(default, skip_serializing_if = "is_false")]
    pub any: bool,
    /// The shapes seen (argv, `argv[0]` included), sorted; empty when `any`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shapes: Vec<Vec<String>>,
}

/// The securityContext fields imprint recommends.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedSecurityContext {
    /// Capabilities to add after dropping ALL (names without `CAP_`).
    pub capabilities_add: Vec<String>,
    /// `allowPrivilegeEscalation`.
    pub allow_privilege_escalation: bool,
    /// `readOnlyRootFilesystem`.
    pub read_only_root_filesystem: bool,
    /// `runAsNonRoot`.
    pub run_as_non_root: bool,
}

/// A problem met while building the profile.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileCondition {
    /// `SkippedEntries`, `Drops`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// One CamelCase word.
    pub reason: String,
    /// What, in words.
    pub message: String,
}
