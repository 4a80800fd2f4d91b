//! Covered reports: once a workload's profile holds what a container did,
//! the container's report needs to hold only what the profile lacks. One
//! rule decides both sides: [`Base::delta`] leaves out of a report exactly
//! what the controller's merge adds back from the profile
//! ([`crate::controller::merge`] adds the same [`Base`] for every report
//! covered by the profile's uid), so a covered report and its profile
//! merge to what the whole report would have.
//!
//! The base is what a [`ContainerProfile`] keeps as recorded: its
//! `recorded` part (syscalls and their calls, needed capabilities, whether
//! a program gained privilege or ran as root), its files, network
//! endpoints, programs and their argument shapes. A profile without
//! `recorded` (an earlier release's) covers nothing.

use std::collections::{BTreeSet, HashMap};

use imprint_crd::profile::{ContainerProfile, Recorded};
use imprint_crd::report::{
    Access, ContainerBehaviorReportSpec, Coverage, NetworkEndpoint, SyscallArguments, SyscallSet,
};

use crate::detect::arguments::ArgumentShapes;
use crate::probes::arguments::RECORDED;

/// What a profile holds of one container, as reports say it.
#[derive(Clone, Debug)]
pub struct Base {
    recorded: Recorded,
    executables: Vec<String>,
    files: HashMap<String, BTreeSet<Access>>,
    network: BTreeSet<NetworkEndpoint>,
    shapes: ArgumentShapes,
}

impl Base {
    /// The base of a profile's container; `None` when it keeps nothing as
    /// recorded.
    pub fn of(container: &ContainerProfile) -> Option<Base> {
        let recorded = container.recorded.clone()?;
        Some(Base {
            recorded,
            executables: container.executables.clone(),
            files: container
                .files
                .iter()
                .map(|f| (f.path.clone(), f.access.clone()))
                .collect(),
            network: container.network.iter().cloned().collect(),
            shapes: ArgumentShapes::from_profile(&container.executables, &container.exec_arguments),
        })
    }

    /// `report` without what this base holds, marked covered by `by`:
    /// subject, window and stats stay whole (they say what the container
    /// did, counted); the lists keep what is new, and what `kept` (the
    /// report as covered before) held of them, so that what a pod added
    /// stays in its report once the profile has learnt it.
    pub fn delta(
        &self,
        report: &ContainerBehaviorReportSpec,
        kept: Option<&ContainerBehaviorReportSpec>,
        by: Coverage,
    ) -> ContainerBehaviorReportSpec {
        let empty = ContainerBehaviorReportSpec::default();
        let kept = kept.unwrap_or(&empty);
        let syscalls = self
            .recorded
            .syscalls
            .iter()
            .find(|s| s.arch == report.syscalls.arch);
        let mut delta = ContainerBehaviorReportSpec {
            subject: report.subject.clone(),
            window: report.window.clone(),
            stats: report.stats.clone(),
            syscalls: new_syscalls(&report.syscalls, syscalls, &kept.syscalls),
            covered: Some(by),
            ..ContainerBehaviorReportSpec::default()
        };
        delta.executables = report
            .executables
            .iter()
            .filter(|exec| {
                self.shapes.allows(&exec.path, &exec.args) != Some(true)
                    || (exec.gains_privilege() && !self.recorded.escalates)
                    || (exec.euid == 0 && !self.recorded.runs_as_root)
                    || kept
                        .executables
                        .iter()
                        .any(|k| k.path == exec.path && k.args == exec.args)
            })
            .cloned()
            .collect();
        delta.files = report
            .files
            .iter()
            .filter(|f| {
                self.files
                    .get(&f.path)
                    .is_none_or(|known| !f.access.is_subset(known))
                    || kept.files.iter().any(|k| k.path == f.path)
            })
            .cloned()
            .collect();
        delta.network = report
            .network
            .iter()
            .filter(|e| !self.network.contains(e) || kept.network.contains(e))
            .cloned()
            .collect();
        delta.capabilities = report
            .capabilities
            .iter()
            .filter(|c| {
                c.needed
                    && (!self.recorded.capabilities.contains(&c.name)
                        || kept.capabilities.iter().any(|k| k.name == c.name))
            })
            .cloned()
            .collect();
        delta
    }

    /// The syscalls, their calls and the needed capabilities, as reports
    /// (one per architecture; the capabilities in the first) for the merge.
    pub fn as_reports(&self) -> Vec<ContainerBehaviorReportSpec> {
        self.recorded
            .syscalls
            .iter()
            .enumerate()
            .map(|(n, syscalls)| ContainerBehaviorReportSpec {
                syscalls: syscalls.clone(),
                capabilities: if n == 0 {
                    self.capability_uses()
                } else {
                    Vec::new()
                },
                ..ContainerBehaviorReportSpec::default()
            })
            .collect()
    }

    /// The needed capabilities, as a report says them.
    fn capability_uses(&self) -> Vec<imprint_crd::report::CapabilityUse> {
        self.recorded
            .capabilities
            .iter()
            .map(|name| imprint_crd::report::CapabilityUse {
                name: name.clone(),
                needed: true,
                ..Default::default()
            })
            .collect()
    }

    /// A covered `report` made whole again for tools that read reports
    /// alone (`imprint recommend`): its lists united with this base's (the
    /// syscalls and calls of its architecture, the needed capabilities,
    /// files, connections, programs by path), not covered any more.
    pub fn expand(&self, report: &ContainerBehaviorReportSpec) -> ContainerBehaviorReportSpec {
        let mut whole = report.clone();
        whole.covered = None;
        let syscalls = self
            .recorded
            .syscalls
            .iter()
            .find(|s| s.arch == report.syscalls.arch)
            .cloned()
            .unwrap_or_default();
        let base = ContainerBehaviorReportSpec {
            subject: report.subject.clone(),
            syscalls: syscalls.clone(),
            capabilities: self.capability_uses(),
            files: self
                .files
                .iter()
                .map(|(path, access)| imprint_crd::report::FileAccess {
                    path: path.clone(),
                    access: access.clone(),
                })
                .collect(),
            network: self.network.iter().cloned().collect(),
            executables: self
                .executables
                .iter()
                .map(|path| imprint_crd::report::Executable {
                    path: path.clone(),
                    ..Default::default()
                })
                .collect(),
            ..ContainerBehaviorReportSpec::default()
        };
        whole.absorb(&base);
        // A recorded syscall the base allows whatever the arguments (used
        // without them recorded) stays so.
        whole.syscalls.arguments.retain(|a| {
            !(syscalls.names.contains(&a.name)
                && RECORDED.iter().any(|(n, _)| *n == a.name)
                && !syscalls.arguments.iter().any(|k| k.name == a.name))
        });
        whole
    }

    /// What the base records beyond the profile's lists.
    pub fn recorded(&self) -> &Recorded {
        &self.recorded
    }
}

/// What an agent knows of the profile of a report's workload.
#[derive(Clone, Copy, Debug)]
pub enum Profile<'a> {
    /// Not read yet (the agent just started).
    NotKnownYet,
    /// There is none, or it holds nothing as recorded.
    None,
    /// It holds what `base` says of the report's container (`None`:
    /// nothing of that container).
    Holds {
        /// Its name and uid.
        coverage: &'a Coverage,
        /// It is Stable or guarding.
        settled: bool,
        /// What it holds of the container.
        base: Option<&'a Base>,
    },
}

/// How an agent writes `report` (composed with what it wrote before, so it
/// may carry the coverage read back) given its workload's `profile` and the
/// report as written before (`earlier`):
/// - covered by `profile` when that holds the container and is settled, or
///   covered the report already (what the report held then stays in it);
/// - covered as it was, lists whole, while the profile that covered it is
///   not known yet or holds nothing of the container (the controller adds
///   the rest back: never less than the report held);
/// - whole otherwise, and once the profile that covered it is gone.
pub fn written(
    mut report: ContainerBehaviorReportSpec,
    profile: Profile<'_>,
    earlier: Option<&ContainerBehaviorReportSpec>,
) -> ContainerBehaviorReportSpec {
    let was = report.covered.take();
    match profile {
        Profile::NotKnownYet => {
            report.covered = was;
            report
        }
        Profile::None => report,
        Profile::Holds {
            coverage,
            settled,
            base,
        } => {
            let still = was.filter(|c| c == coverage);
            let earlier = earlier.filter(|e| e.covered.as_ref() == Some(coverage));
            match base {
                Some(base) if settled || earlier.is_some() || still.is_some() => {
                    base.delta(&report, earlier, coverage.clone())
                }
                _ => {
                    report.covered = still;
                    report
                }
            }
        }
    }
}

/// The syscalls of `seen` that `known` (of the same architecture) does not
/// hold, and those `kept` holds. A syscall whose arguments are recorded is
/// new, with its entry, unless every call it made is known or `known`
/// allows it whatever the arguments (overflowed, or used without them
/// recorded).
fn new_syscalls(seen: &SyscallSet, known: Option<&SyscallSet>, kept: &SyscallSet) -> SyscallSet {
    let Some(known) = known else {
        return seen.clone();
    };
    let entry = |set: &SyscallSet, name: &str| -> Option<SyscallArguments> {
        set.arguments.iter().find(|a| a.name == name).cloned()
    };
    let mut new = SyscallSet {
        arch: seen.arch.clone(),
        unknown_numbers: seen.unknown_numbers.clone(),
        ..SyscallSet::default()
    };
    for name in &seen.names {
        let holds = known.names.contains(name);
        let covered = holds
            && (!RECORDED.iter().any(|(n, _)| n == name)
                || match (entry(known, name), entry(seen, name)) {
                    // Allowed by name already.
                    (None, _) => true,
                    (Some(k), _) if k.overflow => true,
                    (Some(_), None) => false,
                    (Some(_), Some(s)) if s.overflow => false,
                    (Some(k), Some(s)) => s.calls.iter().all(|c| k.calls.contains(c)),
                });
        if !covered || kept.names.contains(name) {
            new.names.push(name.clone());
            if let Some(arguments) = entry(seen, name) {
                new.arguments.push(arguments);
            }
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use imprint_crd::profile::Overrides;
    use imprint_crd::report::{ArgumentValue, CapabilityUse, Executable, FileAccess, WorkloadRef};

    use super::*;
    use crate::controller::completeness::COVERAGE_LOST;
    use crate::controller::merge::{MergedWorkload, WorkloadMerge};

    const UID: &str = "0b8c1a3e-profile";

    /// A real recording (the runtime suite's nginx under load) as the
    /// report of `pod`.
    fn nginx(pod: &str) -> ContainerBehaviorReportSpec {
        let mut spec: ContainerBehaviorReportSpec =
            serde_json::from_str(include_str!("../../e2e/bench/reports/nginx.json")).unwrap();
        spec.subject.namespace = Some("shop".into());
        spec.subject.pod = Some(pod.into());
        spec.subject.pod_uid = Some(format!("uid-{pod}"));
        spec.subject.node = Some("node-1".into());
        spec.subject.container = Some("nginx".into());
        spec.subject.workload = Some(WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        });
        spec
    }

    fn merge(
        reports: &[ContainerBehaviorReportSpec],
        covered_by: Option<&MergedWorkload>,
    ) -> MergedWorkload {
        let overrides = Overrides::default();
        let mut merge = WorkloadMerge::new(&overrides);
        if let Some(profile) = covered_by {
            merge = merge.covered_by(UID, &profile.containers);
        }
        for report in reports {
            merge.add(report);
        }
        merge.finish(None).0
    }

    fn coverage() -> Coverage {
        Coverage {
            profile: "deployment-web".into(),
            uid: UID.into(),
        }
    }

    fn covered(
        profile: &MergedWorkload,
        report: &ContainerBehaviorReportSpec,
    ) -> ContainerBehaviorReportSpec {
        let container = &profile.containers[0];
        Base::of(container).unwrap().delta(report, None, coverage())
    }

    trait Lists {
        fn lists_len(&self) -> usize;
    }

    impl Lists for ContainerBehaviorReportSpec {
        fn lists_len(&self) -> usize {
            self.syscalls.names.len()
                + self.executables.len()
                + self.files.len()
                + self.network.len()
                + self.capabilities.len()
        }
    }

    fn size(spec: &ContainerBehaviorReportSpec) -> usize {
        serde_json::to_vec(spec).unwrap().len()
    }

    /// What a replica did beyond the others: a new syscall, a socket of a
    /// new family, a new write, a program that gains privilege, a
    /// capability, a connection.
    fn busier(pod: &str) -> ContainerBehaviorReportSpec {
        let mut spec = nginx(pod);
        spec.syscalls.names.push("ptrace".into());
        spec.syscalls.names.sort();
        let socket = spec
            .syscalls
            .arguments
            .iter_mut()
            .find(|a| a.name == "socket")
            .unwrap();
        socket.calls.push(vec![ArgumentValue {
            index: 0,
            value: 17,
            mask: Some(0xffff_ffff),
        }]);
        match spec
            .files
            .iter_mut()
            .find(|f| f.path == "/etc/nginx/nginx.conf")
        {
            Some(read) => {
                read.access.insert(Access::Write);
            }
            None => spec.files.push(FileAccess {
                path: "/etc/nginx/nginx.conf".into(),
                access: [Access::Write].into(),
            }),
        }
        spec.executables.push(Executable {
            path: "/usr/bin/su".into(),
            args: vec!["su".into(), "-".into()],
            count: 1,
            setuid: true,
            ..Executable::default()
        });
        spec.capabilities.push(CapabilityUse {
            name: "CAP_NET_RAW".into(),
            needed: true,
            ..CapabilityUse::default()
        });
        spec.network.push(imprint_crd::report::NetworkEndpoint {
            direction: imprint_crd::report::Direction::Outbound,
            protocol: imprint_crd::report::Protocol::Tcp,
            address: "10.96.0.10".into(),
            port: 53,
            peer: None,
        });
        spec
    }

    #[test]
    fn covered_reports_and_their_profile_merge_to_what_the_whole_reports_do() {
        let replicas: Vec<_> = (0..10).map(|n| nginx(&format!("web-{n}"))).collect();
        let whole = merge(&replicas, None);
        assert!(whole.containers[0].recorded.is_some());

        // Every replica covered: each a small fraction of its whole size,
        // and the profile learnt again from them and itself is the same.
        let thin: Vec<_> = replicas.iter().map(|r| covered(&whole, r)).collect();
        for (whole_report, thin_report) in replicas.iter().zip(&thin) {
            assert!(
                size(thin_report) * 10 < size(whole_report),
                "a covered report of nothing new is {} bytes of {}",
                size(thin_report),
                size(whole_report)
            );
            assert!(thin_report.syscalls.names.is_empty() && thin_report.files.is_empty());
            assert_eq!(
                thin_report.stats, whole_report.stats,
                "its counts stay whole"
            );
        }
        let again = merge(&thin, Some(&whole));
        assert_eq!(again.containers, whole.containers);
        assert_eq!((again.replicas, again.reports), (10, 10));
        assert!(again.incomplete.is_empty(), "{:?}", again.conditions);

        // A replica that does more: only what is new is in its report, and
        // the profile learns it exactly as from the whole reports.
        let mut with_more = replicas.clone();
        with_more[3] = busier("web-3");
        let thin_more = covered(&whole, &with_more[3]);
        assert_eq!(thin_more.syscalls.names, ["ptrace", "socket"]);
        assert_eq!(thin_more.syscalls.arguments.len(), 1, "socket's calls, all");
        assert_eq!(thin_more.files.len(), 1);
        assert_eq!(thin_more.executables.len(), 1);
        assert_eq!(thin_more.capabilities.len(), 1);
        assert_eq!(thin_more.network.len(), 1);
        let mut thin_with_more = thin.clone();
        thin_with_more[3] = thin_more;
        let learnt = merge(&thin_with_more, Some(&whole));
        assert_eq!(learnt.containers, merge(&with_more, None).containers);
        let container = &learnt.containers[0];
        assert!(container.syscalls.contains(&"ptrace".to_string()));
        assert!(container.security_context.allow_privilege_escalation);
        assert!(container.capabilities.contains(&"CAP_NET_RAW".to_string()));

        // Covered by the profile that learnt the replica doing more, every
        // replica (that one too) adds nothing new: the profile stays, what
        // only the base says (a program gained privilege) included.
        let richer = merge(&with_more, None);
        let thin_rich: Vec<_> = with_more.iter().map(|r| covered(&richer, r)).collect();
        assert!(
            thin_rich
                .iter()
                .all(|t| t.executables.is_empty() && t.syscalls.names.is_empty())
        );
        assert_eq!(
            merge(&thin_rich, Some(&richer)).containers,
            richer.containers
        );

        // What the replica added stays in its report once the profile has
        // learnt it (the report as covered before is kept), and only that.
        let container = &richer.containers[0];
        let again =
            Base::of(container)
                .unwrap()
                .delta(&with_more[3], Some(&thin_with_more[3]), coverage());
        assert_eq!(again, thin_with_more[3]);
        let before = Base::of(container)
            .unwrap()
            .delta(&with_more[3], Some(&thin[3]), coverage());
        assert_eq!(before.lists_len(), 0, "nothing held before: nothing kept");

        // The same program with the same arguments, now gaining privilege
        // or run as root where it never was: new.
        let mut escalating = nginx("web-4");
        escalating.executables[0].setuid = true;
        let thin_escalating = covered(&whole, &escalating);
        assert_eq!(thin_escalating.executables.len(), 1);
        assert!(
            merge(&[thin_escalating], Some(&whole)).containers[0]
                .security_context
                .allow_privilege_escalation
        );

        // Whole and covered reports together, in any order, and a covered
        // archive: the same profile.
        let mut mixed = vec![thin[0].clone(), with_more[3].clone()];
        mixed.extend(replicas[5..].iter().cloned());
        let mut archive = thin[1].clone();
        archive.absorb(&thin[2]);
        assert_eq!(
            archive.covered,
            Some(coverage()),
            "a union with a covered report is covered"
        );
        mixed.push(archive);
        assert_eq!(
            merge(&mixed, Some(&whole)).containers,
            merge(&with_more, None).containers
        );
    }

    #[test]
    fn an_agent_covers_a_report_only_against_a_profile_it_knows_is_there() {
        let whole = merge(&[nginx("web-0")], None);
        let base = Base::of(&whole.containers[0]).unwrap();
        let by = coverage();
        let holds = |settled, base| Profile::Holds {
            coverage: &by,
            settled,
            base,
        };
        // Read back covered, composed with what the agent holds now.
        let mut read_back = nginx("web-1");
        read_back.covered = Some(by.clone());
        let written = |profile, earlier| super::written(read_back.clone(), profile, earlier);

        let not_yet = written(Profile::NotKnownYet, None);
        assert_eq!(not_yet.covered, Some(by.clone()), "still covered");
        assert_eq!(not_yet.syscalls, read_back.syscalls, "its lists whole");
        let gone = written(Profile::None, None);
        assert_eq!(gone.covered, None, "whole once the profile is gone");
        let other = Coverage {
            uid: "another".into(),
            ..by.clone()
        };
        let replaced = super::written(
            read_back.clone(),
            Profile::Holds {
                coverage: &other,
                settled: true,
                base: Some(&base),
            },
            None,
        );
        assert_eq!(
            replaced.covered,
            Some(other.clone()),
            "covered by the new one"
        );
        let no_base = written(holds(true, None), None);
        assert_eq!(
            no_base.covered,
            Some(by.clone()),
            "nothing of the container: as it was"
        );
        let learning = written(holds(false, Some(&base)), None);
        assert!(
            learning.covered.is_some() && learning.syscalls.names.is_empty(),
            "covered already: covered on while the profile learns"
        );
        // A whole report: covered only once the profile is settled.
        let fresh = nginx("web-2");
        assert_eq!(
            super::written(fresh.clone(), holds(false, Some(&base)), None),
            fresh
        );
        let settled = super::written(fresh.clone(), holds(true, Some(&base)), None);
        assert_eq!(settled.covered, Some(by.clone()));
        assert_eq!(settled.lists_len(), 0);
    }

    #[test]
    fn a_covered_report_expanded_recommends_what_the_whole_one_does() {
        let whole = merge(&[nginx("web-0")], None);
        let base = Base::of(&whole.containers[0]).unwrap();
        let report = busier("web-1");
        let expanded = base.expand(&covered(&whole, &report));
        assert_eq!(expanded.covered, None);
        let from = |spec: &ContainerBehaviorReportSpec| {
            let merged = crate::recommend::merge([spec]);
            (
                crate::recommend::oci_profile_with(
                    &merged,
                    crate::recommend::ArgumentStyle::Restricted,
                ),
                crate::recommend::capabilities(&merged),
            )
        };
        assert_eq!(from(&expanded), from(&report));
        let mut network = expanded.network.clone();
        network.sort();
        let mut seen = report.network.clone();
        seen.sort();
        assert_eq!(network, seen);
    }

    #[test]
    fn folded_files_of_the_profile_decide_no_root_write() {
        // 1,100 directories written in a writable mount: the profile's
        // files fold up to `/var/**`, and the root stays read-only-able
        // only if the base's writes are the profile's root writes, not
        // its folded files.
        let mut spec = nginx("web-0");
        spec.subject.writable_mounts = vec!["/var/lib/app".into()];
        spec.files
            .retain(|f| !f.access.iter().any(|a| a.is_write()));
        for n in 0..1100 {
            spec.files.push(FileAccess {
                path: format!("/var/lib/app/d{n}/data"),
                access: [Access::Write, Access::Create].into(),
            });
        }
        let whole = merge(std::slice::from_ref(&spec), None);
        let container = &whole.containers[0];
        assert!(
            container.files.iter().any(|f| f.path == "/var/**"),
            "folded"
        );
        assert!(
            container.root_writes.is_empty()
                && container.security_context.read_only_root_filesystem
        );
        let thin = covered(&whole, &spec);
        assert_eq!(merge(&[thin], Some(&whole)).containers, whole.containers);
    }

    #[test]
    fn calls_are_covered_as_the_merge_reads_them() {
        let whole = merge(&[nginx("web-0")], None);
        let recorded = whole.containers[0].recorded.clone().unwrap();
        let socket = |set: &SyscallSet| set.arguments.iter().find(|a| a.name == "socket").cloned();
        assert_eq!(
            socket(&recorded.syscalls[0]),
            socket(&nginx("web-0").syscalls),
            "the calls kept as recorded"
        );
        // The same calls: covered. Overflowed, or not recorded: new, and
        // the profile allows socket by name from then on.
        for change in ["overflow", "unrecorded"] {
            let mut spec = nginx("web-1");
            let entry = spec
                .syscalls
                .arguments
                .iter_mut()
                .position(|a| a.name == "socket")
                .unwrap();
            match change {
                "overflow" => spec.syscalls.arguments[entry].overflow = true,
                _ => {
                    spec.syscalls.arguments.remove(entry);
                }
            }
            let thin = covered(&whole, &spec);
            assert_eq!(thin.syscalls.names, ["socket"], "{change}");
            let learnt = merge(std::slice::from_ref(&thin), Some(&whole));
            assert_eq!(
                learnt.containers,
                merge(&[nginx("web-0"), spec], None).containers
            );
            assert!(
                !learnt.containers[0]
                    .syscall_arguments
                    .iter()
                    .any(|a| a.name == "socket"),
                "{change}: socket allowed by name"
            );
            // Once the profile allows it by name, any socket call is covered.
            let thin_again = covered(&learnt, &nginx("web-2"));
            assert!(thin_again.syscalls.names.is_empty(), "{change}");
        }
    }

    #[test]
    fn reports_covered_by_a_profile_that_is_gone_are_said_to_lack_it() {
        let whole = merge(&[nginx("web-0")], None);
        let thin = covered(&whole, &nginx("web-1"));
        // The profile was deleted and made again: another uid, no base.
        let overrides = Overrides::default();
        let mut merge = WorkloadMerge::new(&overrides).covered_by("another-uid", &whole.containers);
        merge.add(&thin);
        let (merged, _) = merge.finish(None);
        let lost = merged
            .conditions
            .iter()
            .find(|c| c.type_ == COVERAGE_LOST)
            .expect("a CoverageLost condition");
        assert!(lost.message.starts_with("1 reports"), "{}", lost.message);
        assert!(merged.incomplete.is_empty(), "said, not blocking");
    }
}
