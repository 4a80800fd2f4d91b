//! What a container did while it was learnt (its reports merged), in the
//! shape the detector asks questions of: was this program, file access,
//! syscall, capability or endpoint part of it?

use std::collections::{BTreeSet, HashMap, HashSet};

use imprint_crd::report::{Access, ContainerBehaviorReportSpec, Direction, NetworkEndpoint};

/// A learnt profile, ready for lookups.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    programs: HashSet<String>,
    executions: HashSet<(String, Vec<String>)>,
    files: HashMap<String, BTreeSet<Access>>,
    /// Folded entries (`dir/*`, `/top/**`) with their accesses.
    folds: Vec<(String, bool, BTreeSet<Access>)>,
    syscalls: HashSet<String>,
    capabilities: HashSet<String>,
    endpoints: HashSet<(Direction, String, String, u16)>,
    listening_ports: HashSet<(String, u16)>,
    /// Reports merged into it.
    pub reports: usize,
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
            self.executions
                .insert((exec.path.clone(), exec.args.clone()));
        }
        for file in &report.files {
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
        self.syscalls.extend(report.syscalls.names.iter().cloned());
        self.syscalls.extend(
            report
                .syscalls
                .unknown_numbers
                .iter()
                .map(|n| format!("syscall_{n}")),
        );
        self.capabilities.extend(
            report
                .capabilities
                .iter()
                .filter(|c| c.needed)
                .map(|c| c.name.clone()),
        );
        for endpoint in &report.network {
            self.endpoints.insert(endpoint_key(endpoint));
            if endpoint.direction == Direction::Listening {
                self.listening_ports
                    .insert((format!("{:?}", endpoint.protocol), endpoint.port));
            }
        }
    }

    /// The file was executed while learning.
    pub fn has_program(&self, path: &str) -> bool {
        self.programs.contains(path)
    }

    /// The file was executed with exactly this argv while learning.
    pub fn has_execution(&self, path: &str, args: &[String]) -> bool {
        self.executions.contains(&(path.to_string(), args.to_vec()))
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

    /// The capability was needed while learning.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.contains(name)
    }

    /// The endpoint was used while learning; an inbound connection counts
    /// as known when its local port was listened on or accepted on.
    pub fn has_endpoint(&self, endpoint: &NetworkEndpoint) -> bool {
        match endpoint.direction {
            Direction::Inbound => {
                self.listening_ports
                    .contains(&(format!("{:?}", endpoint.protocol), endpoint.port))
                    || self.endpoints.iter().any(|(d, p, _, port)| {
                        *d == Direction::Inbound
                            && *p == format!("{:?}", endpoint.protocol)
                            && *port == endpoint.port
                    })
            }
            _ => self.endpoints.contains(&endpoint_key(endpoint)),
        }
    }
}

fn endpoint_key(e: &NetworkEndpoint) -> (Direction, String, String, u16) {
    (
        e.direction,
        format!("{:?}", e.protocol),
        e.address.clone(),
        e.port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::report::{Executable, FileAccess, Protocol};

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
