//! The controller's merge at cluster scale: 10,000 synthetic reports (500
//! workloads x 20 replicas, realistic sizes) parsed from JSON as the
//! controller's reflector holds them, grouped by workload and merged into
//! profiles and SeccompProfile specs.
//!
//! `cargo bench -p imprint --bench merge`. Runs twice, each in a process of
//! its own: holding the reports as parsed objects (what a reflector store
//! holds; the baseline) and as the controller's compact store holds them.
//! Prints time and peak memory (VmHWM) of both and compares the controller's
//! with the targets (<= 5 s, <= 256 MiB); it never fails on them.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use imprint::controller::merge::{merge_workload, writable_mounts};
use imprint::controller::seccomp::seccomp_spec;
use imprint::controller::store::StoredReport;
use imprint_crd::profile::Overrides;
use imprint_crd::report::{
    Access, CapabilityUse, ContainerBehaviorReport, ContainerBehaviorReportSpec, Direction,
    Executable, FileAccess, NetworkEndpoint, Protocol, Subject, SyscallSet, WorkloadRef,
};

mod peaks;

const WORKLOADS: usize = 500;
const REPLICAS: usize = 20;

fn main() {
    let Some(outputs) =
        peaks::each_in_its_own_process(&["full", "compact"], |mode| run(mode == "compact"))
    else {
        return;
    };
    let (full, compact) = (&outputs[0], &outputs[1]);
    let (time, mem) = (
        peaks::figure(compact, "seconds"),
        peaks::figure(compact, "peak_mib"),
    );
    println!(
        "controller (compact store): {time:.2} s (goal <= 5 s: {}), peak {mem:.1} MiB (goal <= 256 MiB: {}); \
         baseline (parsed objects, as a reflector holds them): {:.2} s, {:.1} MiB ({:.2}x the memory)",
        peaks::met(time <= 5.0),
        peaks::met(mem <= 256.0),
        peaks::figure(full, "seconds"),
        peaks::figure(full, "peak_mib"),
        peaks::figure(full, "peak_mib") / mem
    );
}

/// Receives 10,000 reports as JSON and merges them, keeping them as parsed
/// objects (`compact` false) or as the controller's store keeps them.
fn run(compact: bool) {
    let names: Vec<&str> = syscall_names();
    let mut bytes = 0;
    let mut received = std::time::Duration::ZERO;
    let mut full: Vec<ContainerBehaviorReport> = Vec::new();
    let mut store: Vec<StoredReport> = Vec::new();
    for i in 0..WORKLOADS * REPLICAS {
        let text = serde_json::to_string(&synthetic(i, &names)).expect("serializes");
        bytes += text.len();
        let t = Instant::now();
        let report: ContainerBehaviorReport = serde_json::from_str(&text).expect("parses");
        if compact {
            store.push(StoredReport::keep(&report));
        } else {
            full.push(report);
        }
        received += t.elapsed();
    }
    let held = peaks::vm_hwm_kib();

    // The controller's work: group by workload, merge, SeccompProfile specs.
    let t = Instant::now();
    let overrides = Overrides::default();
    let mut allowed = 0;
    let profiles = if compact {
        // As the controller does: one report parsed, added and dropped at a
        // time.
        let merged = peaks::merge_as_the_controller(&store, &overrides);
        for merged in &merged {
            for container in &merged.containers {
                let spec = seccomp_spec(
                    &container.architectures,
                    &container.syscalls,
                    &container.syscall_arguments,
                );
                allowed += spec.syscalls.first().map_or(0, |r| r.names.len());
            }
        }
        merged.len()
    } else {
        let mut groups: HashMap<String, Vec<&ContainerBehaviorReportSpec>> = HashMap::new();
        for report in &full {
            let key = format!(
                "{:?}{:?}",
                report.spec.subject.namespace, report.spec.subject.workload
            );
            groups.entry(key).or_default().push(&report.spec);
        }
        for specs in groups.values() {
            let merged = merge_workload(specs, &overrides, &writable_mounts(specs));
            for container in &merged.containers {
                let spec = seccomp_spec(
                    &container.architectures,
                    &container.syscalls,
                    &container.syscall_arguments,
                );
                allowed += spec.syscalls.first().map_or(0, |r| r.names.len());
            }
        }
        groups.len()
    };
    let merging = t.elapsed();
    let peak = peaks::vm_hwm_kib();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "{}: {} reports ({} workloads x {} replicas, {:.1} KiB of JSON each): received in {:.2} s, held in {:.1} MiB; merged into {} profiles ({} allowed syscall entries) in {:.2} s; peak {:.1} MiB",
        if compact {
            "compact store"
        } else {
            "parsed objects"
        },
        WORKLOADS * REPLICAS,
        WORKLOADS,
        REPLICAS,
        bytes as f64 / 1024.0 / (WORKLOADS * REPLICAS) as f64,
        received.as_secs_f64(),
        mib(held),
        profiles,
        allowed,
        merging.as_secs_f64(),
        mib(peak)
    );
    println!("seconds {:.3}", (received + merging).as_secs_f64());
    println!("peak_mib {:.1}", mib(peak));
}

fn syscall_names() -> Vec<&'static str> {
    (0..450)
        .filter_map(|nr| syscalls::x86_64::Sysno::new(nr).map(|s| s.name()))
        .collect()
}

/// Report `i`: workload `i / REPLICAS`, a replica of it with the sizes of
/// real server reports (nginx here: 103 syscalls, about 65 files): 110
/// syscalls (mostly shared within the workload), 100 files, 8 programs,
/// 20 endpoints and 3 capabilities.
fn synthetic(i: usize, names: &[&str]) -> ContainerBehaviorReport {
    let workload = i / REPLICAS;
    let replica = i % REPLICAS;
    let syscalls: BTreeSet<String> = (0..110)
        .map(|k| names[(workload * 7 + k * 3 + (k % 5) * replica) % names.len()].to_string())
        .collect();
    let files = (0..100)
        .map(|k| FileAccess {
            path: format!("/srv/app-{workload}/data/{}/file-{k}.dat", k % 10),
            access: if k % 4 == 0 {
                BTreeSet::from([Access::Read, Access::Write])
            } else {
                BTreeSet::from([Access::Read])
            },
        })
        .collect();
    let executables = (0..8)
        .map(|k| Executable {
            path: format!("/usr/bin/tool-{k}"),
            args: vec![format!("tool-{k}"), "--flag".into()],
            count: 3,
            ..Executable::default()
        })
        .collect();
    let network = (0..20)
        .map(|k| NetworkEndpoint {
            direction: if k % 2 == 0 {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            protocol: Protocol::Tcp,
            address: format!("10.244.{}.{}", k, replica),
            port: 8000 + k as u16,
            peer: None,
        })
        .collect();
    let capabilities = ["CAP_CHOWN", "CAP_SETUID", "CAP_NET_BIND_SERVICE"]
        .iter()
        .map(|name| CapabilityUse {
            name: name.to_string(),
            needed: true,
            ..CapabilityUse::default()
        })
        .collect();
    let mut spec = ContainerBehaviorReportSpec {
        subject: Subject {
            node: Some(format!("node-{}", replica % 5)),
            namespace: Some(format!("team-{}", workload % 20)),
            pod: Some(format!("app-{workload}-{replica}")),
            pod_uid: Some(format!("uid-{workload}-{replica}")),
            container: Some("app".into()),
            workload: Some(WorkloadRef {
                kind: "Deployment".into(),
                name: format!("app-{workload}"),
            }),
            writable_mounts: vec!["/srv".into()],
            ..Subject::default()
        },
        syscalls: SyscallSet {
            arch: "x86_64".into(),
            names: syscalls.into_iter().collect(),
            unknown_numbers: Vec::new(),
            arguments: Vec::new(),
        },
        executables,
        files,
        network,
        capabilities,
        ..ContainerBehaviorReportSpec::default()
    };
    spec.update_counts();
    ContainerBehaviorReport::new(&format!("app-{workload}-{replica}-app"), spec)
}
