//! The alert: one JSON object per line, a versioned schema (README
//! "Alerts"). Field names are camelCase like the custom resources'.

use imprint_crd::report::Subject;
use serde::{Deserialize, Serialize};

/// The schema every alert line names in `schema`.
pub const SCHEMA: &str = "imprint.dev/alert/v1";

/// How bad an alert is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Unusual for the workload.
    Medium,
    /// Likely an intrusion step.
    High,
    /// An intrusion technique with few innocent uses.
    Critical,
}

impl Severity {
    /// The lowercase name (`low` .. `critical`), as metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One alert.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The rule's stable id (README "Rules").
    pub rule: String,
    /// The rule's severity.
    pub severity: Severity,
    /// One line for a human.
    pub message: String,
    /// When the kernel saw it (RFC 3339).
    pub time: String,
    /// Whose behavior it is, named as in the reports.
    pub subject: Subject,
    /// The item is outside the container's learnt profile (`false`: a
    /// built-in rule matched, with no profile or inside it).
    #[serde(default)]
    pub outside_profile: bool,
    /// The process that did it (absent when the kernel could not tell:
    /// an inbound connection accepted in interrupt context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// Its ancestors in the container, nearest first.
    #[serde(default)]
    pub ancestry: Vec<Ancestor>,
    /// What was seen.
    pub observed: Observed,
    /// Summaries: how many alerts were held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// The process behind an alert.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// Process id (the host's pid namespace).
    pub pid: u32,
    /// Parent's process id.
    pub ppid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// The executed file, as the kernel resolved it (empty when unknown).
    pub exe: String,
    /// Its argv.
    pub args: Vec<String>,
}

/// An ancestor of the process.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ancestor {
    /// Process id.
    pub pid: u32,
    /// The executed file (empty when unknown).
    pub exe: String,
    /// Its argv.
    pub args: Vec<String>,
}

/// What was seen, by kind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Observed {
    /// A program executed.
    Exec {
        /// The executed file.
        path: String,
        /// Its argv.
        args: Vec<String>,
    },
    /// A file accessed or changed.
    #[serde(rename_all = "camelCase")]
    File {
        /// The path (normalised as in reports).
        path: String,
        /// The accesses (`read`, `write`, `create`, `chmod`...).
        access: Vec<String>,
    },
    /// A syscall made for the first time in the container.
    Syscall {
        /// Its name (or `syscall_<n>`).
        name: String,
    },
    /// A call of a syscall whose arguments are recorded, with values new
    /// in the container.
    SyscallArguments {
        /// The syscall.
        name: String,
        /// Its recorded arguments (`(argument & mask) == value`).
        arguments: Vec<imprint_crd::report::ArgumentValue>,
    },
    /// A capability checked and granted.
    Capability {
        /// `CAP_*`.
        name: String,
    },
    /// A network endpoint used.
    Network {
        /// `outbound`, `inbound` or `listening`.
        direction: String,
        /// `tcp`, `udp` or `other`.
        protocol: String,
        /// Peer address (outbound, inbound) or local address (listening).
        address: String,
        /// Peer port (outbound), local port (inbound, listening).
        port: u16,
    },
    /// Alerts held back by the rate limit (a summary).
    Held {
        /// The rules of the alerts held back.
        rules: Vec<String>,
    },
}

impl Observed {
    /// The kind's name (`exec`, `file`, `syscall`, `syscallArguments`,
    /// `capability`, `network`, `held`).
    pub fn kind(&self) -> &'static str {
        match self {
            Observed::Exec { .. } => "exec",
            Observed::File { .. } => "file",
            Observed::Syscall { .. } => "syscall",
            Observed::SyscallArguments { .. } => "syscallArguments",
            Observed::Capability { .. } => "capability",
            Observed::Network { .. } => "network",
            Observed::Held { .. } => "held",
        }
    }

    /// What makes two observations of one rule in one container the same
    /// alert (the cooldown's key).
    pub fn key(&self) -> String {
        match self {
            Observed::Exec { path, .. } => path.clone(),
            Observed::File { path, access } => format!("{path} {}", access.join(",")),
            Observed::Syscall { name } | Observed::Capability { name } => name.clone(),
            Observed::SyscallArguments { name, arguments } => {
                super::arguments::value(name, arguments)
            }
            Observed::Network {
                direction,
                protocol,
                address,
                port,
            } => format!("{direction} {protocol} {address} {port}"),
            Observed::Held { rules } => rules.join(","),
        }
    }
}
