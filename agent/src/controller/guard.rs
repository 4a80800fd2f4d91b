//! Guarding: once a profile stops learning (`spec.mode` Guard, or Auto
//! once Stable), its containers' allow-lists stay as they were, plus what
//! the user accepts; what reports show beyond them is an anomaly, counted
//! per report and listed in status, never merged into the allow-list (so
//! the SeccompProfile does not change). Pure: profiles and reports in,
//! allow-lists and anomalies out.

use std::collections::{BTreeMap, BTreeSet};

use imprint_crd::profile::{
    Accepted, Anomaly, AnomalyKind, BehaviorProfile, ContainerProfile, Mode, Phase,
};
use imprint_crd::report::{
    Access, ContainerBehaviorReportSpec, Direction, FileAccess, NetworkEndpoint, Protocol,
    earliest, latest,
};

use crate::detect::arguments::{self, ArgumentShapes};
use crate::detect::baseline::{Baseline, endpoint_value};

/// Anomalies shown per container (the most recent).
pub const SHOWN: usize = 20;
/// Distinct anomalies counted per container; past it they are only counted.
pub const TRACKED: usize = 256;

/// Whether `profile` guards already: its status says so and its mode
/// still wants it (a profile set to Learn learns again at once).
pub fn guarding(profile: &BehaviorProfile) -> bool {
    profile.spec.mode != Mode::Learn && profile.status.as_ref().is_some_and(|s| s.guarding)
}

/// Whether a profile of `mode` guards from this reconcile on, its phase
/// now `phase`: Guard at once, Auto once Stable, Learn never. The
/// allow-list it starts from is this reconcile's merge (everything learnt,
/// files included, even from a release that kept no files).
pub fn starts_guarding(mode: Mode, phase: Phase) -> bool {
    match mode {
        Mode::Guard => true,
        Mode::Auto => phase == Phase::Stable,
        Mode::Learn => false,
    }
}

/// The allow-lists of a guarding profile, and the anomalies of the reports
/// merged against them.
#[derive(Debug, Default)]
pub struct Guard {
    /// Per container: the frozen profile with the accepted items in.
    allowed: BTreeMap<String, (ContainerProfile, Baseline)>,
    accept: Vec<Accepted>,
    anomalies: BTreeMap<String, BTreeMap<(AnomalyKind, String), Anomaly>>,
    untracked: BTreeMap<String, u64>,
}

impl Guard {
    /// The guard of `profile` when it guards.
    pub fn of(profile: &BehaviorProfile) -> Option<Guard> {
        if !guarding(profile) {
            return None;
        }
        let frozen = profile
            .status
            .as_ref()
            .map(|s| s.containers.clone())
            .unwrap_or_default();
        let mut guard = Guard {
            accept: profile.spec.accept.clone(),
            ..Guard::default()
        };
        for container in frozen {
            guard.allow(container);
        }
        Some(guard)
    }

    fn allow(&mut self, mut container: ContainerProfile) {
        container.anomalies.clear();
        for accepted in &self.accept {
            if accepted
                .container
                .as_ref()
                .is_none_or(|c| *c == container.name)
            {
                accept(&mut container, accepted);
            }
        }
        let baseline = Baseline::from_profile(&container);
        self.allowed
            .insert(container.name.clone(), (container, baseline));
    }

    /// Counts what `report` shows beyond its container's allow-list.
    pub fn observe(&mut self, report: &ContainerBehaviorReportSpec) {
        let name = report.subject.container.clone().unwrap_or_default();
        if !self.allowed.contains_key(&name) {
            // A container the profile never held: it guards nothing yet.
            self.allow(ContainerProfile {
                name: name.clone(),
                ..ContainerProfile::default()
            });
        }
        let (_, baseline) = &self.allowed[&name];
        let found = outside(baseline, report);
        let seen = self.anomalies.entry(name.clone()).or_default();
        for (kind, value) in found {
            let key = (kind, value);
            if !seen.contains_key(&key) && seen.len() >= TRACKED {
                *self.untracked.entry(name.clone()).or_default() += 1;
                continue;
            }
            let entry = seen.entry(key.clone()).or_insert_with(|| Anomaly {
                kind: key.0,
                value: key.1.clone(),
                ..Anomaly::default()
            });
            entry.count += 1;
            entry.first_seen = earliest(&entry.first_seen, &report.window.first_seen);
            entry.last_seen = latest(&entry.last_seen, &report.window.last_seen);
        }
    }

    /// The guarded containers (allow-lists with accepted items, each with
    /// its most recent anomalies), and every anomaly's count in total.
    pub fn finish(self) -> (Vec<ContainerProfile>, u64) {
        let mut total = self.untracked.values().sum::<u64>();
        let mut anomalies = self.anomalies;
        let containers = self
            .allowed
            .into_values()
            .map(|(mut container, _)| {
                let mut found: Vec<Anomaly> = anomalies
                    .remove(&container.name)
                    .unwrap_or_default()
                    .into_values()
                    .collect();
                total += found.len() as u64;
                found.sort_by(|a, b| {
                    b.last_seen
                        .cmp(&a.last_seen)
                        .then_with(|| (a.kind, &a.value).cmp(&(b.kind, &b.value)))
                });
                found.truncate(SHOWN);
                container.anomalies = found;
                container
            })
            .collect();
        (containers, total)
    }
}

/// What `report` did beyond `allowed`: programs, file writes, syscalls,
/// calls with new arguments, needed capabilities, outbound and listening
/// endpoints.
fn outside(allowed: &Baseline, report: &ContainerBehaviorReportSpec) -> Vec<(AnomalyKind, String)> {
    let mut found = Vec::new();
    for exec in &report.executables {
        if !allowed.has_program(&exec.path) {
            found.push((AnomalyKind::Exec, exec.path.clone()));
        } else if !exec.args.is_empty() && !allowed.has_execution(&exec.path, &exec.args) {
            found.push((
                AnomalyKind::ExecArguments,
                arguments::value(&exec.path, &arguments::shape(&exec.args)),
            ));
        }
    }
    for file in &report.files {
        let writes: Vec<Access> = file
            .access
            .iter()
            .copied()
            .filter(|a| a.is_write())
            .collect();
        if !writes.is_empty() && !allowed.has_file_access(&file.path, &writes) {
            found.push((AnomalyKind::File, file.path.clone()));
        }
    }
    for name in &report.syscalls.names {
        if !allowed.has_syscall(name) {
            found.push((AnomalyKind::Syscall, name.clone()));
        }
    }
    for seen in &report.syscalls.arguments {
        for call in &seen.calls {
            if !allowed.has_call(&seen.name, call) {
                found.push((
                    AnomalyKind::SyscallArguments,
                    arguments::value(&seen.name, call),
                ));
            }
        }
    }
    for cap in &report.capabilities {
        if cap.needed && !allowed.has_capability(&cap.name) {
            found.push((AnomalyKind::Capability, cap.name.clone()));
        }
    }
    for endpoint in &report.network {
        if endpoint.direction != Direction::Inbound && !allowed.has_endpoint(endpoint) {
            found.push((AnomalyKind::Network, endpoint_value(endpoint)));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Adds an accepted item to a container's allow-list.
fn accept(container: &mut ContainerProfile, accepted: &Accepted) {
    let value = accepted.value.clone();
    let insert = |list: &mut Vec<String>| {
        if !list.contains(&value) {
            list.push(value.clone());
            list.sort();
        }
    };
    match accepted.kind {
        AnomalyKind::Exec => insert(&mut container.executables),
        AnomalyKind::ExecArguments => {
            let Some((path, shape)) = arguments::parse_value(&value) else {
                return;
            };
            let mut shapes =
                ArgumentShapes::from_profile(&container.executables, &container.exec_arguments);
            if !container.executables.contains(&path) {
                container.executables.push(path.clone());
                container.executables.sort();
            }
            shapes.add_shape(&path, shape);
            container.exec_arguments = shapes.to_profile();
        }
        AnomalyKind::Syscall => insert(&mut container.syscalls),
        AnomalyKind::SyscallArguments => {
            let Some((name, call)) = arguments::parse_value(&value) else {
                return;
            };
            // Only a syscall the profile restricts takes more calls; any
            // other allows every call already (or is its own anomaly).
            if let Some(restricted) = container
                .syscall_arguments
                .iter_mut()
                .find(|s| s.name == name)
                && !restricted.calls.contains(&call)
            {
                restricted.calls.push(call);
                restricted.calls.sort();
            }
        }
        AnomalyKind::Capability => {
            insert(&mut container.capabilities);
            let short = value.trim_start_matches("CAP_").to_string();
            let add = &mut container.security_context.capabilities_add;
            if !add.contains(&short) {
                add.push(short);
                add.sort();
            }
        }
        AnomalyKind::File => {
            let every_write: BTreeSet<Access> = [
                Access::Read,
                Access::Write,
                Access::Create,
                Access::Truncate,
                Access::Unlink,
                Access::RenameFrom,
                Access::RenameTo,
                Access::Chmod,
                Access::Chown,
            ]
            .into();
            match container.files.iter_mut().find(|f| f.path == value) {
                Some(file) => file.access.extend(every_write),
                None => container.files.push(FileAccess {
                    path: value,
                    access: every_write,
                }),
            }
        }
        AnomalyKind::Network => {
            if let Some(endpoint) = parse_endpoint(&value)
                && !container.network.contains(&endpoint)
            {
                container.network.push(endpoint);
                container.network.sort();
            }
        }
    }
}

/// An endpoint from its `direction protocol address port` name.
pub fn parse_endpoint(value: &str) -> Option<NetworkEndpoint> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [direction, protocol, address, port] = parts[..] else {
        return None;
    };
    let direction = match direction {
        "outbound" => Direction::Outbound,
        "inbound" => Direction::Inbound,
        "listening" => Direction::Listening,
        _ => return None,
    };
    let protocol = match protocol {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "other" => Protocol::Other,
        _ => return None,
    };
    Some(NetworkEndpoint {
        direction,
        protocol,
        address: address.to_string(),
        port: port.parse().ok()?,
        peer: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::profile::{BehaviorProfileSpec, BehaviorProfileStatus};
    use imprint_crd::report::{CapabilityUse, Executable, Subject, Window};

    fn frozen() -> ContainerProfile {
        ContainerProfile {
            name: "web".into(),
            syscalls: vec!["accept4".into(), "read".into()],
            executables: vec!["/usr/sbin/nginx".into()],
            exec_arguments: vec![imprint_crd::profile::ExecArguments {
                path: "/usr/sbin/nginx".into(),
                any: false,
                shapes: vec![vec!["nginx".into(), "-g".into(), "daemon off;".into()]],
            }],
            files: vec![FileAccess {
                path: "/var/cache/nginx/*".into(),
                access: [Access::Write, Access::Create].into(),
            }],
            network: vec![parse_endpoint("listening tcp 0.0.0.0 80").unwrap()],
            ..ContainerProfile::default()
        }
    }

    fn profile(mode: Mode, phase: Phase, accept: Vec<Accepted>) -> BehaviorProfile {
        let mut p = BehaviorProfile::new(
            "deployment-web",
            BehaviorProfileSpec {
                mode,
                accept,
                ..BehaviorProfileSpec::default()
            },
        );
        p.status = Some(BehaviorProfileStatus {
            phase,
            guarding: true,
            containers: vec![frozen()],
            ..BehaviorProfileStatus::default()
        });
        p
    }

    fn report(last_seen: &str) -> ContainerBehaviorReportSpec {
        let mut r = ContainerBehaviorReportSpec {
            subject: Subject {
                container: Some("web".into()),
                ..Subject::default()
            },
            window: Window {
                first_seen: Some("2026-12-05T10:00:00Z".into()),
                last_seen: Some(last_seen.into()),
            },
            ..ContainerBehaviorReportSpec::default()
        };
        r.syscalls.names = vec!["read".into(), "ptrace".into()];
        r.executables = vec![
            Executable {
                path: "/usr/sbin/nginx".into(),
                args: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
                ..Executable::default()
            },
            Executable {
                path: "/usr/sbin/nginx".into(),
                args: vec!["nginx".into(), "-s".into(), "reload".into()],
                ..Executable::default()
            },
            Executable {
                // Arguments cut: nothing to say of them.
                path: "/usr/sbin/nginx".into(),
                ..Executable::default()
            },
            Executable {
                path: "/bin/sh".into(),
                ..Executable::default()
            },
        ];
        r.files = vec![
            FileAccess {
                path: "/var/cache/nginx/a".into(),
                access: [Access::Write].into(),
            },
            FileAccess {
                path: "/etc/x".into(),
                access: [Access::Write, Access::Create].into(),
            },
            FileAccess {
                path: "/etc/passwd".into(),
                access: [Access::Read].into(),
            },
        ];
        r.capabilities = vec![CapabilityUse {
            name: "CAP_NET_RAW".into(),
            needed: true,
            ..CapabilityUse::default()
        }];
        r.network = vec![
            parse_endpoint("listening tcp 0.0.0.0 80").unwrap(),
            parse_endpoint("listening tcp 0.0.0.0 4444").unwrap(),
            parse_endpoint("inbound tcp 10.0.0.7 80").unwrap(),
        ];
        r
    }

    #[test]
    fn auto_guards_once_stable_learn_never_guard_always() {
        assert!(!starts_guarding(Mode::Auto, Phase::Learning));
        assert!(starts_guarding(Mode::Auto, Phase::Stable));
        assert!(!starts_guarding(Mode::Learn, Phase::Stable));
        assert!(starts_guarding(Mode::Guard, Phase::Learning));
        // Guarding goes on from the status, whatever the phase, until the
        // mode is Learn.
        assert!(guarding(&profile(Mode::Auto, Phase::Learning, vec![])));
        assert!(!guarding(&profile(Mode::Learn, Phase::Stable, vec![])));
        let mut not_yet = profile(Mode::Auto, Phase::Stable, vec![]);
        not_yet.status.as_mut().unwrap().guarding = false;
        assert!(!guarding(&not_yet), "the first guarding reconcile merges");
        assert!(Guard::of(&not_yet).is_none());
    }

    #[test]
    fn what_reports_add_is_an_anomaly_and_the_allow_list_stays() {
        let mut guard = Guard::of(&profile(Mode::Auto, Phase::Stable, vec![])).unwrap();
        guard.observe(&report("2026-12-05T11:00:00Z"));
        guard.observe(&report("2026-12-05T12:00:00Z"));
        let (containers, total) = guard.finish();
        assert_eq!(containers.len(), 1);
        let web = &containers[0];
        assert_eq!(
            web.syscalls,
            frozen().syscalls,
            "the allow-list does not learn"
        );
        assert_eq!(web.executables, frozen().executables);
        let found: Vec<(AnomalyKind, &str, u64)> = web
            .anomalies
            .iter()
            .map(|a| (a.kind, a.value.as_str(), a.count))
            .collect();
        assert_eq!(
            found,
            [
                (AnomalyKind::Exec, "/bin/sh", 2),
                (AnomalyKind::File, "/etc/x", 2),
                (AnomalyKind::Syscall, "ptrace", 2),
                (AnomalyKind::Capability, "CAP_NET_RAW", 2),
                (AnomalyKind::Network, "listening tcp 0.0.0.0 4444", 2),
                (
                    AnomalyKind::ExecArguments,
                    r#"/usr/sbin/nginx ["nginx","-s","reload"]"#,
                    2
                ),
            ]
        );
        assert_eq!(total, 6);
        assert_eq!(web.exec_arguments, frozen().exec_arguments);
        assert_eq!(
            web.anomalies[0].last_seen.as_deref(),
            Some("2026-12-05T12:00:00Z")
        );
    }

    #[test]
    fn an_accepted_anomaly_is_allowed_and_no_longer_one() {
        let accept = vec![
            Accepted {
                container: None,
                kind: AnomalyKind::Exec,
                value: "/bin/sh".into(),
            },
            Accepted {
                container: Some("web".into()),
                kind: AnomalyKind::Network,
                value: "listening tcp 0.0.0.0 4444".into(),
            },
            Accepted {
                container: None,
                kind: AnomalyKind::ExecArguments,
                value: r#"/usr/sbin/nginx ["nginx","-s","reload"]"#.into(),
            },
            Accepted {
                container: Some("other".into()),
                kind: AnomalyKind::Syscall,
                value: "ptrace".into(),
            },
        ];
        let mut guard = Guard::of(&profile(Mode::Guard, Phase::Learning, accept)).unwrap();
        guard.observe(&report("2026-12-05T11:00:00Z"));
        let (containers, _) = guard.finish();
        let web = &containers[0];
        assert!(web.executables.contains(&"/bin/sh".to_string()));
        assert!(web.network.iter().any(|e| e.port == 4444));
        let nginx = web
            .exec_arguments
            .iter()
            .find(|e| e.path == "/usr/sbin/nginx");
        assert_eq!(nginx.map(|e| e.shapes.len()), Some(2));
        let kinds: Vec<AnomalyKind> = web.anomalies.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                AnomalyKind::File,
                AnomalyKind::Syscall,
                AnomalyKind::Capability
            ],
            "ptrace was accepted for another container only"
        );
    }

    #[test]
    fn anomalies_stay_bounded() {
        let mut guard = Guard::of(&profile(Mode::Guard, Phase::Stable, vec![])).unwrap();
        for i in 0..(TRACKED + 44) {
            let mut r = report("2026-12-05T11:00:00Z");
            r.executables = vec![Executable {
                path: format!("/opt/p{i}"),
                ..Executable::default()
            }];
            r.syscalls.names.clear();
            r.files.clear();
            r.capabilities.clear();
            r.network.clear();
            guard.observe(&r);
        }
        let (containers, total) = guard.finish();
        assert_eq!(containers[0].anomalies.len(), SHOWN);
        assert_eq!(total, (TRACKED + 44) as u64);
    }

    #[test]
    fn a_new_call_of_a_restricted_syscall_is_an_anomaly_until_accepted() {
        use imprint_crd::report::{ArgumentValue, SyscallArguments};
        let family = |f: u64| {
            vec![ArgumentValue {
                index: 0,
                value: f,
                mask: Some(0xffff_ffff),
            }]
        };
        let mut container = frozen();
        container.syscalls.push("socket".into());
        container.syscall_arguments = vec![SyscallArguments {
            name: "socket".into(),
            calls: vec![family(2)],
            overflow: false,
        }];
        let mut p = profile(Mode::Guard, Phase::Stable, vec![]);
        p.status.as_mut().unwrap().containers = vec![container];
        let mut r = report("2026-12-05T11:00:00Z");
        r.syscalls.names.push("socket".into());
        r.syscalls.arguments = vec![SyscallArguments {
            name: "socket".into(),
            calls: vec![family(2), family(17)],
            overflow: false,
        }];
        let mut guard = Guard::of(&p).unwrap();
        guard.observe(&r);
        let (containers, _) = guard.finish();
        let found: Vec<(AnomalyKind, &str)> = containers[0]
            .anomalies
            .iter()
            .map(|a| (a.kind, a.value.as_str()))
            .filter(|(kind, _)| *kind == AnomalyKind::SyscallArguments)
            .collect();
        let packet = r#"socket [{"index":0,"value":17,"mask":4294967295}]"#;
        assert_eq!(found, [(AnomalyKind::SyscallArguments, packet)]);
        assert_eq!(
            containers[0].syscall_arguments[0].calls.len(),
            1,
            "not learnt"
        );

        // Accepted: allowed, and no longer an anomaly.
        p.spec.accept = vec![Accepted {
            kind: AnomalyKind::SyscallArguments,
            value: packet.into(),
            container: None,
        }];
        let mut guard = Guard::of(&p).unwrap();
        guard.observe(&r);
        let (containers, _) = guard.finish();
        assert!(
            !containers[0]
                .anomalies
                .iter()
                .any(|a| a.kind == AnomalyKind::SyscallArguments)
        );
        assert_eq!(
            containers[0].syscall_arguments[0].calls,
            [family(2), family(17)]
        );
    }
}
