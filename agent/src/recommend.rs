//! From observed behavior to least privilege: pure functions, no I/O.
//!
//! Several reports (replicas, nodes, restarts of one container) merge into
//! one [`Merged`] behavior; from it come a seccomp profile (OCI JSON or
//! security-profiles-operator's `SeccompProfile`) whose default action is
//! `SCMP_ACT_ERRNO` and which allows exactly the syscalls observed (those
//! whose arguments were recorded only for the calls seen:
//! [`crate::argument_rules`]), and a capability set that drops ALL and adds
//! exactly the capabilities needed (granted in an audited check).

use std::collections::{BTreeMap, BTreeSet};

use imprint_crd::report::{ArgumentValue, ContainerBehaviorReportSpec};
use imprint_crd::spo::{ArgumentRule, SeccompProfile, SeccompProfileSpec, SyscallRule};
use k8s_openapi::api::core::v1::Capabilities;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::argument_rules::{self, ArgumentRules, Arguments, ENOSYS};

use crate::kube_names::object_name;
use crate::names::{Arch, capability_from_name};

/// errno returned for syscalls outside the profile.
pub const EPERM: u32 = 1;

/// The union of several reports' behavior.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Syscall names by architecture.
    pub syscalls: BTreeMap<Arch, BTreeSet<String>>,
    /// Capabilities needed (`CAP_*`).
    pub capabilities: BTreeSet<String>,
    /// The calls of the syscalls whose arguments are recorded.
    pub arguments: Arguments,
    /// Entries that were skipped, with why (unknown names).
    pub skipped: Vec<String>,
    /// Reports merged.
    pub reports: usize,
}

/// Merges reports. Unknown syscall or capability names are skipped and
/// listed in [`Merged::skipped`], never allowed blindly.
pub fn merge<'a>(reports: impl IntoIterator<Item = &'a ContainerBehaviorReportSpec>) -> Merged {
    let mut merged = Merged::default();
    for report in reports {
        merged.add(report);
    }
    merged
}

impl Merged {
    /// Adds one report (what [`merge`] does for each).
    pub fn add(&mut self, report: &ContainerBehaviorReportSpec) {
        self.reports += 1;
        let Some(arch) = Arch::from_kernel_name(&report.syscalls.arch) else {
            self.skipped
                .push(format!("architecture {:?}", report.syscalls.arch));
            return;
        };
        self.arguments.add(report);
        let names = self.syscalls.entry(arch).or_default();
        for name in &report.syscalls.names {
            if arch.has_syscall(name) {
                if !names.contains(name) {
                    names.insert(name.clone());
                }
            } else {
                self.skipped.push(format!(
                    "syscall {name:?} (not a {} syscall)",
                    arch.kernel_name()
                ));
            }
        }
        for nr in &report.syscalls.unknown_numbers {
            self.skipped.push(format!(
                "syscall number {nr} (no name in the {} table)",
                arch.kernel_name()
            ));
        }
        for cap in report.capabilities.iter().filter(|c| c.needed) {
            match capability_from_name(&cap.name) {
                Some(c) => {
                    self.capabilities.insert(c.to_string());
                }
                None => self.skipped.push(format!("capability {:?}", cap.name)),
            }
        }
    }
}

/// Syscalls every profile allows, observed or not: what any Linux process
/// may need at a moment that a recording need not include. Each is needed
/// by something the workload does not choose, and none grants anything.
pub const BASELINE: [&str; 10] = [
    // Returning from a signal handler: a process that installs a handler
    // but received no signal while recorded dies at the first one after.
    "rt_sigreturn",
    // Waiting for another thread: a lock nobody contended and a join of a
    // thread already done make no syscall, so a recording may lack it, and
    // a threaded program refused it dies (SIGSEGV, glibc and Rust's std) at
    // the first join or lock that has to wait.
    "futex",
    // The kernel resumes an interrupted sleep (nanosleep, poll, futex with
    // a timeout) through it after a stop and continue (SIGSTOP, SIGTSTP,
    // a debugger, a checkpoint).
    "restart_syscall",
    // The end of every process and thread: a server recorded while it ran
    // never showed them, and must still be able to stop.
    "exit",
    "exit_group",
    // The vDSO answers these without a syscall where the node's clock
    // source allows it, and falls back to the syscall where it does not
    // (another node, a VM whose TSC is unstable).
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "time",
    "getcpu",
];

/// Every syscall name allowed, across architectures, sorted: the observed
/// ones and the [`BASELINE`] (those of it that the architectures have).
pub fn allowed_syscalls(merged: &Merged) -> Vec<String> {
    let baseline = BASELINE
        .iter()
        .filter(|name| merged.syscalls.keys().any(|arch| arch.has_syscall(name)));
    merged
        .syscalls
        .values()
        .flatten()
        .cloned()
        .chain(baseline.map(|name| name.to_string()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Whether a profile restricts arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArgumentStyle {
    /// Syscalls whose arguments were recorded are allowed only for the
    /// calls seen.
    #[default]
    Restricted,
    /// Every syscall by name (for runtimes or tools that take no argument
    /// rules).
    NamesOnly,
}

/// The argument rules of the profile for `merged` (none for
/// [`ArgumentStyle::NamesOnly`]).
pub fn argument_rules(merged: &Merged, style: ArgumentStyle) -> ArgumentRules {
    match style {
        ArgumentStyle::NamesOnly => ArgumentRules::default(),
        ArgumentStyle::Restricted => {
            let allowed: BTreeSet<String> = allowed_syscalls(merged).into_iter().collect();
            argument_rules::rules(&merged.arguments, &allowed)
        }
    }
}

/// An OCI runtime-spec seccomp profile (what runc, crun, podman and docker take).
pub fn oci_profile(merged: &Merged) -> LinuxSeccomp {
    oci_profile_with(merged, ArgumentStyle::Restricted)
}

/// [`oci_profile`], with or without argument rules.
pub fn oci_profile_with(merged: &Merged, style: ArgumentStyle) -> LinuxSeccomp {
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(EPERM));
    profile.set_architectures(Some(merged.syscalls.keys().map(|a| oci_arch(*a)).collect()));
    let rules = argument_rules(merged, style);
    let names: Vec<String> = allowed_syscalls(merged)
        .into_iter()
        .filter(|n| !rules.covers(n))
        .collect();
    let mut syscalls = Vec::new();
    if !names.is_empty() {
        let mut rule = LinuxSyscall::default();
        rule.set_names(names);
        rule.set_action(LinuxSeccompAction::ScmpActAllow);
        syscalls.push(rule);
    }
    for (name, calls) in &rules.restricted {
        for call in calls {
            let mut rule = LinuxSyscall::default();
            rule.set_names(vec![name.clone()]);
            rule.set_action(LinuxSeccompAction::ScmpActAllow);
            rule.set_args(Some(call.iter().map(oci_arg).collect()));
            syscalls.push(rule);
        }
    }
    if rules.clone3_enosys {
        let mut rule = LinuxSyscall::default();
        rule.set_names(vec!["clone3".into()]);
        rule.set_action(LinuxSeccompAction::ScmpActErrno);
        rule.set_errno_ret(Some(ENOSYS));
        syscalls.push(rule);
    }
    if !syscalls.is_empty() {
        profile.set_syscalls(Some(syscalls));
    }
    profile
}

/// An argument condition: `(argument & mask) == value`, or `==` without a mask.
fn oci_arg(value: &ArgumentValue) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default().index(value.index as usize);
    let builder = match value.mask {
        Some(mask) => builder
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .value(mask)
            .value_two(value.value),
        None => builder
            .op(LinuxSeccompOperator::ScmpCmpEq)
            .value(value.value),
    };
    builder
        .build()
        .expect("every field of an argument condition is set")
}

/// The same condition in security-profiles-operator's schema.
fn spo_arg(value: &ArgumentValue) -> ArgumentRule {
    match value.mask {
        Some(mask) => ArgumentRule {
            index: value.index,
            value: mask,
            value_two: Some(value.value),
            op: "SCMP_CMP_MASKED_EQ".into(),
        },
        None => ArgumentRule {
            index: value.index,
            value: value.value,
            value_two: None,
            op: "SCMP_CMP_EQ".into(),
        },
    }
}

fn oci_arch(arch: Arch) -> oci_spec::runtime::Arch {
    match arch {
        Arch::X86_64 => oci_spec::runtime::Arch::ScmpArchX86_64,
        Arch::Aarch64 => oci_spec::runtime::Arch::ScmpArchAarch64,
    }
}

/// The profile's spec in security-profiles-operator's schema.
pub fn spo_spec(merged: &Merged) -> SeccompProfileSpec {
    spo_spec_with(merged, ArgumentStyle::Restricted)
}

/// [`spo_spec`], with or without argument rules.
pub fn spo_spec_with(merged: &Merged, style: ArgumentStyle) -> SeccompProfileSpec {
    let architectures: Vec<Arch> = merged.syscalls.keys().copied().collect();
    spo_spec_of(
        &architectures,
        allowed_syscalls(merged),
        &argument_rules(merged, style),
    )
}

/// A security-profiles-operator profile spec for `architectures` that
/// allows `allowed`, those `rules` cover only on their arguments: what
/// `imprint recommend --format spo` and the controller both write.
pub fn spo_spec_of(
    architectures: &[Arch],
    allowed: Vec<String>,
    rules: &ArgumentRules,
) -> SeccompProfileSpec {
    let names = allowed.into_iter().filter(|n| !rules.covers(n)).collect();
    let mut spec = seccomp_profile_spec(architectures, names);
    for (name, calls) in &rules.restricted {
        for call in calls {
            spec.syscalls.push(SyscallRule {
                action: "SCMP_ACT_ALLOW".into(),
                names: vec![name.clone()],
                errno_ret: None,
                args: call.iter().map(spo_arg).collect(),
            });
        }
    }
    if rules.clone3_enosys {
        spec.syscalls.push(SyscallRule {
            action: "SCMP_ACT_ERRNO".into(),
            names: vec!["clone3".into()],
            errno_ret: Some(ENOSYS),
            args: Vec::new(),
        });
    }
    spec
}

/// A security-profiles-operator profile spec for `architectures` that
/// denies every syscall (EPERM) but `allowed`, by name.
pub fn seccomp_profile_spec(architectures: &[Arch], allowed: Vec<String>) -> SeccompProfileSpec {
    SeccompProfileSpec {
        default_action: "SCMP_ACT_ERRNO".into(),
        architectures: architectures
            .iter()
            .map(|a| a.seccomp_name().to_string())
            .collect(),
        syscalls: if allowed.is_empty() {
            Vec::new()
        } else {
            vec![SyscallRule {
                action: "SCMP_ACT_ALLOW".into(),
                names: allowed,
                errno_ret: None,
                args: Vec::new(),
            }]
        },
        base_profile_name: None,
    }
}

/// A security-profiles-operator `SeccompProfile` (v1, cluster-scoped) named `name`.
pub fn spo_profile(name: &str, merged: &Merged, style: ArgumentStyle) -> SeccompProfile {
    SeccompProfile {
        metadata: ObjectMeta {
            name: Some(object_name(name, 253)),
            ..ObjectMeta::default()
        },
        spec: spo_spec_with(merged, style),
    }
}

/// Kubernetes capabilities for a securityContext: drop ALL, add the needed
/// ones (names without `CAP_`, as Kubernetes writes them).
pub fn capabilities(merged: &Merged) -> Capabilities {
    Capabilities {
        drop: Some(vec!["ALL".into()]),
        add: Some(
            merged
                .capabilities
                .iter()
                .map(|c| c.trim_start_matches("CAP_").to_string())
                .collect(),
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use imprint_crd::report::{CapabilityUse, SyscallSet};

    /// `observed` and the baseline, sorted, as every profile allows them.
    pub(crate) fn with_baseline(observed: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = observed
            .iter()
            .chain(BASELINE.iter())
            .map(|s| s.to_string())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    #[test]
    fn every_profile_allows_the_baseline_and_no_more_than_it() {
        let m = merge([&report("x86_64", &["read"], &[])]);
        let allowed = allowed_syscalls(&m);
        assert_eq!(allowed, with_baseline(&["read"]));
        assert!(allowed.iter().any(|s| s == "rt_sigreturn"));
        assert!(allowed.iter().any(|s| s == "restart_syscall"));
        assert!(allowed.iter().any(|s| s == "futex"));
        let arm = merge([&report("aarch64", &["read"], &[])]);
        assert!(
            !allowed_syscalls(&arm).iter().any(|s| s == "time"),
            "aarch64 has no time syscall"
        );
        assert!(allowed_syscalls(&Merged::default()).is_empty());
    }

    fn report(arch: &str, names: &[&str], caps: &[(&str, bool)]) -> ContainerBehaviorReportSpec {
        ContainerBehaviorReportSpec {
            syscalls: SyscallSet {
                arch: arch.into(),
                names: names.iter().map(|s| s.to_string()).collect(),
                unknown_numbers: Vec::new(),
                arguments: Vec::new(),
            },
            capabilities: caps
                .iter()
                .map(|(name, needed)| CapabilityUse {
                    name: name.to_string(),
                    needed: *needed,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn merges_the_union_across_reports_and_architectures() {
        let a = report(
            "x86_64",
            &["read", "write", "openat"],
            &[("CAP_CHOWN", true), ("CAP_SYS_ADMIN", false)],
        );
        let b = report(
            "x86_64",
            &["read", "mkdir"],
            &[("CAP_NET_BIND_SERVICE", true)],
        );
        let c = report("aarch64", &["read", "mkdirat"], &[]);
        let m = merge([&a, &b, &c]);
        assert_eq!(m.reports, 3);
        assert_eq!(
            m.syscalls[&Arch::X86_64].iter().collect::<Vec<_>>(),
            ["mkdir", "openat", "read", "write"]
        );
        assert_eq!(
            m.syscalls[&Arch::Aarch64].iter().collect::<Vec<_>>(),
            ["mkdirat", "read"]
        );
        assert_eq!(
            m.capabilities.iter().collect::<Vec<_>>(),
            ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
        );
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        assert_eq!(
            allowed_syscalls(&m),
            with_baseline(&["mkdir", "mkdirat", "openat", "read", "write"])
        );
    }

    #[test]
    fn unknown_names_are_skipped_and_listed() {
        let mut a = report(
            "x86_64",
            &["read", "frobnicate", "mkdirat"],
            &[("CAP_MAGIC", true)],
        );
        a.syscalls.unknown_numbers.push(999);
        let b = report("sparc", &["read"], &[]);
        let m = merge([&a, &b]);
        assert_eq!(m.syscalls[&Arch::X86_64].len(), 2);
        assert_eq!(m.skipped.len(), 4, "{:?}", m.skipped);
        assert!(m.capabilities.is_empty());
        let aarch = merge([&report("aarch64", &["open"], &[])]);
        assert!(
            aarch.syscalls[&Arch::Aarch64].is_empty(),
            "open is not an aarch64 syscall"
        );
    }

    #[test]
    fn oci_profile_denies_by_default_and_allows_what_was_seen() {
        let m = merge([&report("x86_64", &["write", "read"], &[])]);
        let json = serde_json::to_value(oci_profile(&m)).unwrap();
        assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(json["defaultErrnoRet"], 1);
        assert_eq!(
            json["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64"])
        );
        assert_eq!(
            json["syscalls"][0]["names"],
            serde_json::json!(with_baseline(&["read", "write"]))
        );
        assert_eq!(json["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
    }

    #[test]
    fn recorded_arguments_become_rules_of_their_own_unless_names_only() {
        let mut r = report("x86_64", &["read", "socket"], &[]);
        r.syscalls.arguments = vec![imprint_crd::report::SyscallArguments {
            name: "socket".into(),
            calls: vec![vec![
                ArgumentValue {
                    index: 0,
                    value: 1,
                    mask: Some(0xffff_ffff),
                },
                ArgumentValue {
                    index: 1,
                    value: 2,
                    mask: None,
                },
            ]],
            overflow: false,
        }];
        let m = merge([&r]);
        let json = serde_json::to_value(oci_profile(&m)).unwrap();
        assert_eq!(
            json["syscalls"][0]["names"],
            serde_json::json!(with_baseline(&["read"]))
        );
        assert_eq!(
            json["syscalls"][1],
            serde_json::json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 0xffff_ffffu64, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"},
                {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]})
        );
        let spo = serde_json::to_value(spo_spec(&m)).unwrap();
        assert_eq!(spo["syscalls"][1]["args"][0]["valueTwo"], 1);
        assert_eq!(spo["syscalls"][1]["args"][1]["op"], "SCMP_CMP_EQ");
        let names_only =
            serde_json::to_value(oci_profile_with(&m, ArgumentStyle::NamesOnly)).unwrap();
        assert_eq!(
            names_only["syscalls"],
            serde_json::json!([{"names": with_baseline(&["read", "socket"]), "action": "SCMP_ACT_ALLOW"}])
        );
    }

    #[test]
    fn spo_profile_matches_the_operator_schema_shape() {
        let m = merge([
            &report("x86_64", &["read"], &[]),
            &report("aarch64", &["read"], &[]),
        ]);
        let p = spo_profile("My_App/Container", &m, ArgumentStyle::Restricted);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["apiVersion"], "security-profiles-operator.x-k8s.io/v1");
        assert_eq!(json["kind"], "SeccompProfile");
        assert_eq!(json["metadata"]["name"], "my-app-container");
        assert_eq!(json["spec"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            json["spec"]["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"])
        );
        assert_eq!(
            json["spec"]["syscalls"][0]["names"],
            serde_json::json!(with_baseline(&["read"]))
        );
    }

    #[test]
    fn capabilities_drop_all_and_add_the_needed() {
        let m = merge([&report(
            "x86_64",
            &[],
            &[("CAP_CHOWN", true), ("CAP_KILL", false), ("net_raw", true)],
        )]);
        let caps = capabilities(&m);
        assert_eq!(caps.drop.unwrap(), ["ALL"]);
        assert_eq!(caps.add.unwrap(), ["CHOWN", "NET_RAW"]);
        let none = capabilities(&merge([&report("x86_64", &[], &[])]));
        assert_eq!(none.add.unwrap(), Vec::<String>::new());
    }
}
