//! What a container did while it was learnt (its reports merged), in the
//! shape the detector asks questions of: was this program, file access,
//! syscall, capability or endpoint part of it?

use std::collections::{BTreeSet, HashMap, HashSet};

use imprint_crd::profile::ContainerProfile;

use super::arguments::ArgumentShapes;
use crate::argument_rules::{Arguments, satisfies};
use imprint_crd::report::{
    Access, ArgumentValue, ContainerBehaviorReportSpec, Direction, FileAccess, NetworkEndpoint,
};

/// A learnt profile, ready for lookups.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    programs: HashSet<String>,
    arguments: ArgumentShapes,
    files: HashMap<String, BTreeSet<Access>>,
    /// Folded entries (`dir/*`, `/top/**`) with their accesses.
    folds: Vec<(String, bool, BTreeSet<Access>)>,
    syscalls: HashSet<String>,
    /// The calls of the syscalls whose arguments are recorded.
    calls: Arguments,
    capabilities: HashSet<String>,
    /// Endpoints as [`endpoint_value`] names them.
    endpoints: HashSet<String>,
    /// `protocol port` of every listening or accepting port.
    inbound_ports: HashSet<String>,
    /// Reports merged into it.
    pub reports: usize,
}

/// How an endpoint is named in alerts, anomalies and `spec.accept`:
/// `direction protocol address port` (`outbound tcp 10.0.0.1 443`).
pub fn endpoint_value(e: &NetworkEndpoint) -> String {
    format!(
        "{} {} {} {}",
        name_of(&e.direction),
        name_of(&e.protocol),
        e.address,
        e.port
    )
}

/// The serialized name of a unit enum variant (`outbound`, `tcp`).
pub fn name_of<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn inbound_port(e: &NetworkEndpoint) -> String {
    format!("{} {}", name_of(&e.protocol), e.port)
}

impl Baseline {
    /// The union of `reports` (as `recommend` merges them).
    pub fn from_reports<'a>(
        reports: impl IntoIterator<Item = &'a ContainerBehaviorReportSpec>,
    ) -> Baseline {
        let mut baseline = Baseline::default();
        for report in reports {
            baseline.add(report);
        }
        baseline
    }

    /// Adds one report.
    pub fn add(&mut self, report: &ContainerBehaviorReportSpec) {
        self.reports += 1;
        for exec in &report.executables {
            self.programs.insert(exec.path.clone());
            self.arguments.add(&exec.path, &exec.args);
        }
        for file in &report.files {
            self.add_file(file);
        }
        self.syscalls.extend(report.syscalls.names.iter().cloned());
        self.syscalls.extend(
            report
                .syscalls
                .unknown_numbers
                .iter()
                .map(|n| format!("syscall_{n}")),
        );
        self.calls.add(report);
        self.capabilities.extend(
            report
                .capabilities
                .iter()
                .filter(|c| c.needed)
                .map(|c| c.name.clone()),
        );
        for endpoint in &report.network {
            self.add_endpoint(endpoint);
        }
    }

    /// The allow-list of a profile's container: programs and their
    /// argument shapes, files by access, syscalls, capabilities, endpoints.
    pub fn from_profile(profile: &ContainerProfile) -> Baseline {
        let mut baseline = Baseline {
            arguments: ArgumentShapes::from_profile(&profile.executables, &profile.exec_arguments),
            ..Baseline::default()
        };
        baseline
            .programs
            .extend(profile.executables.iter().cloned());
        for file in &profile.files {
            baseline.add_file(file);
        }
        baseline.syscalls.extend(profile.syscalls.iter().cloned());
        for restricted in &profile.syscall_arguments {
            baseline
                .calls
                .by_syscall
                .entry(restricted.name.clone())
                .or_default()
                .calls
                .extend(restricted.calls.iter().cloned());
        }
        baseline
            .capabilities
            .extend(profile.capabilities.iter().cloned());
        for endpoint in &profile.network {
            baseline.add_endpoint(endpoint);
        }
        baseline
    }

    fn add_endpoint(&mut self, endpoint: &NetworkEndpoint) {
        self.endpoints.insert(endpoint_value(endpoint));
        if endpoint.direction != Direction::Outbound {
            self.inbound_ports.insert(inbound_port(endpoint));
        }
    }

    fn add_file(&mut self, file: &FileAccess) {
        if let Some(prefix) = file.path.strip_suffix("/**") {
            self.folds
                .push((format!("{prefix}/"), true, file.access.clone()));
        } else if let Some(prefix) = file.path.strip_suffix("/*") {
            self.folds
                .push((format!("{prefix}/"), false, file.access.clone()));
        } else {
            self.files
                .entry(file.path.clone())
                .or_default()
                .extend(file.access.iter().copied());
        }
    }

    /// The file was executed while learning.
    pub fn has_program(&self, path: &str) -> bool {
        self.programs.contains(path)
    }

    /// The file was executed with an argv of this shape while learning
    /// (or its arguments are not kept: past the bound, or cut).
    pub fn has_execution(&self, path: &str, args: &[String]) -> bool {
        self.has_program(path) && self.arguments.allows(path, args) != Some(false)
    }

    /// Every access of `accesses` to the (normalised) `path` was made
    /// while learning, directly or under a folded entry.
    pub fn has_file_access(&self, path: &str, accesses: &[Access]) -> bool {
        let covered = |known: &BTreeSet<Access>| accesses.iter().all(|a| known.contains(a));
        if self.files.get(path).is_some_and(covered) {
            return true;
        }
        self.folds.iter().any(|(prefix, deep, known)| {
            path.strip_prefix(prefix.as_str())
                .is_some_and(|rest| *deep || !rest.contains('/'))
                && covered(known)
        })
    }

    /// The syscall was made while learning.
    pub fn has_syscall(&self, name: &str) -> bool {
        self.syscalls.contains(name)
    }

    /// The profile allows the call (the recorded arguments of one of the
    /// syscalls whose arguments are recorded) as its seccomp rules read it:
    /// it meets the conditions of a call made while learning or of one
    /// every profile allows, or the syscall is allowed by name (its calls
    /// were not all known: never made, recorded without its arguments, too
    /// many values).
    pub fn has_call(&self, name: &str, call: &[ArgumentValue]) -> bool {
        let Some(used) = self.calls.by_syscall.get(name) else {
            return true;
        };
        match used.rule_calls(name) {
            Err(_) => true,
            Ok(rules) => rules.is_empty() || rules.iter().any(|rule| satisfies(call, rule)),
        }
    }

    /// The capability was needed while learning.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.contains(name)
    }

    /// The endpoint was used while learning; an inbound connection counts
    /// as known when its local port was listened on or accepted on.
    pub fn has_endpoint(&self, endpoint: &NetworkEndpoint) -> bool {
        match endpoint.direction {
            Direction::Inbound => self.inbound_ports.contains(&inbound_port(endpoint)),
            _ => self.endpoints.contains(&endpoint_value(endpoint)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::report::{Executable, Protocol};

    fn spec() -> ContainerBehaviorReportSpec {
        let mut spec = ContainerBehaviorReportSpec::default();
        spec.executables.push(Executable {
            path: "/usr/sbin/nginx".into(),
            args: vec!["nginx".into()],
            count: 1,
            ..Executable::default()
        });
        spec.files.push(FileAccess {
            path: "/etc/nginx/nginx.conf".into(),
            access: [Access::Read].into(),
        });
        spec.files.push(FileAccess {
            path: "/var/cache/nginx/*".into(),
            access: [Access::Read, Access::Write, Access::Create].into(),
        });
        spec.files.push(FileAccess {
            path: "/usr/**".into(),
            access: [Access::Read].into(),
        });
        spec.syscalls.names = vec!["read".into(), "accept4".into()];
        spec.network.push(NetworkEndpoint {
            direction: Direction::Listening,
            protocol: Protocol::Tcp,
            address: "0.0.0.0".into(),
            port: 80,
            peer: None,
        });
        spec
    }

    #[test]
    fn answers_from_exact_and_folded_entries() {
        let b = Baseline::from_reports([&spec()]);
        assert!(b.has_program("/usr/sbin/nginx") && !b.has_program("/bin/sh"));
        assert!(b.has_execution("/usr/sbin/nginx", &["nginx".to_string()]));
        assert!(!b.has_execution("/usr/sbin/nginx", &["nginx".into(), "-s".into()]));
        assert!(!b.has_execution("/bin/sh", &["sh".into()]));
        assert!(b.has_file_access("/etc/nginx/nginx.conf", &[Access::Read]));
        assert!(!b.has_file_access("/etc/nginx/nginx.conf", &[Access::Write]));
        assert!(b.has_file_access("/var/cache/nginx/x", &[Access::Write, Access::Create]));
        assert!(
            !b.has_file_access("/var/cache/nginx/a/b", &[Access::Write]),
            "one level only"
        );
        assert!(b.has_file_access("/usr/lib/x/y.so", &[Access::Read]));
        assert!(!b.has_file_access("/usr/lib/x/y.so", &[Access::Write]));
        assert!(!b.has_file_access("/usrx/y", &[Access::Read]));
        assert!(b.has_syscall("accept4") && !b.has_syscall("ptrace"));
        let inbound = NetworkEndpoint {
            direction: Direction::Inbound,
            protocol: Protocol::Tcp,
            address: "10.0.0.9".into(),
            port: 80,
            peer: None,
        };
        assert!(b.has_endpoint(&inbound), "any client on a learnt listener");
        let listener = NetworkEndpoint {
            direction: Direction::Listening,
            port: 8080,
            ..inbound.clone()
        };
        assert!(!b.has_endpoint(&listener));
    }
}
