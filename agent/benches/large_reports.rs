//! The controller with the largest reports: 1,000 reports of about 500 KiB
//! each (10 workloads x 100 replicas; mostly file paths, most of them
//! shared by a workload's replicas, some of each pod's own), received as
//! JSON the way the watcher receives them, kept, and merged per workload.
//!
//! `cargo bench -p imprint --bench large_reports`. Runs twice, each in a
//! process of its own so that each peak is its own:
//! - baseline: the earlier store (each spec kept as JSON bytes) and merge
//!   (every report of a workload parsed at once, then merged);
//! - controller: what the controller does now (`StoredReport`: the spec
//!   zstd-compressed; `WorkloadMerge`: one report parsed, added and dropped
//!   at a time).
//!
//! Prints time and peak memory (VmHWM) of both and compares the
//! controller's with the goals (merge <= 10 s, peak <= 256 MiB); it never
//! fails on them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use imprint::controller::merge::{merge_workload, writable_mounts};
use imprint::controller::store::StoredReport;
use imprint_crd::profile::Overrides;
use imprint_crd::report::{
    Access, CapabilityUse, ContainerBehaviorReport, ContainerBehaviorReportSpec, Direction,
    Executable, FileAccess, NetworkEndpoint, Protocol, Subject, SyscallSet, WorkloadRef,
};

mod peaks;

const WORKLOADS: usize = 10;
const REPLICAS: usize = 100;
/// File entries per report: about 500 KiB of JSON with the paths below.
const FILES: usize = 4_300;
/// One in this many file entries is the pod's own (the rest are shared by
/// the workload's replicas).
const OWN_EVERY: usize = 10;

fn main() {
    let Some(outputs) = peaks::each_in_its_own_process(&["baseline", "controller"], |mode| {
        run(mode == "controller")
    }) else {
        return;
    };
    let (baseline, controller) = (&outputs[0], &outputs[1]);
    let (merge, peak) = (
        peaks::figure(controller, "merge_seconds"),
        peaks::figure(controller, "peak_mib"),
    );
    println!(
        "controller: merge {merge:.2} s (goal <= 10 s: {}), peak {peak:.1} MiB (goal <= 256 MiB: {}); \
         baseline (JSON store, a workload parsed at once): merge {:.2} s, peak {:.1} MiB ({:.2}x the controller's memory)",
        peaks::met(merge <= 10.0),
        peaks::met(peak <= 256.0),
        peaks::figure(baseline, "merge_seconds"),
        peaks::figure(baseline, "peak_mib"),
        peaks::figure(baseline, "peak_mib") / peak
    );
}

/// The earlier store: the spec as JSON bytes.
struct JsonKept {
    workload: usize,
    json: Vec<u8>,
}

fn run(controller: bool) {
    let mut bytes = 0usize;
    let mut received = Duration::ZERO;
    let mut kept: Vec<StoredReport> = Vec::new();
    let mut json_kept: Vec<JsonKept> = Vec::new();
    for i in 0..WORKLOADS * REPLICAS {
        // The wire: one report's JSON at a time (never all at once).
        let text = serde_json::to_string(&synthetic(i)).expect("serializes");
        bytes += text.len();
        let t = Instant::now();
        let report: ContainerBehaviorReport = serde_json::from_str(&text).expect("parses");
        drop(text);
        if controller {
            kept.push(StoredReport::keep(&report));
        } else {
            json_kept.push(JsonKept {
                workload: i / REPLICAS,
                json: serde_json::to_vec(&report.spec).expect("serializes"),
            });
        }
        received += t.elapsed();
    }
    let store_bytes: usize = if controller {
        kept.iter().map(|r| r.spec_bytes()).sum()
    } else {
        json_kept.iter().map(|r| r.json.len()).sum()
    };

    let overrides = Overrides::default();
    let t = Instant::now();
    let mut summary: Vec<(usize, usize, usize)> = Vec::new();
    if controller {
        for merged in peaks::merge_as_the_controller(&kept, &overrides) {
            summary.push(shape(&merged));
        }
    } else {
        let mut groups: BTreeMap<usize, Vec<&JsonKept>> = BTreeMap::new();
        for report in &json_kept {
            groups.entry(report.workload).or_default().push(report);
        }
        for reports in groups.values() {
            let specs: Vec<ContainerBehaviorReportSpec> = reports
                .iter()
                .map(|r| serde_json::from_slice(&r.json).expect("parses"))
                .collect();
            let refs: Vec<&ContainerBehaviorReportSpec> = specs.iter().collect();
            let merged = merge_workload(&refs, &overrides, &writable_mounts(&refs));
            summary.push(shape(&merged));
        }
    }
    let merging = t.elapsed();
    let peak = peaks::vm_hwm_kib();
    summary.sort();
    let mib = |n: f64| n / 1_048_576.0;
    println!(
        "{}: {} reports ({} workloads x {} replicas, {:.0} KiB of JSON each, {:.0} MiB in all): received in {:.2} s, kept in {:.1} MiB; merged in {:.2} s into {} profiles ({} syscalls, {} root writes, {} programs in the first); peak {:.1} MiB",
        if controller {
            "controller (compressed store, one report at a time)"
        } else {
            "baseline (JSON store, a workload parsed at once)"
        },
        WORKLOADS * REPLICAS,
        WORKLOADS,
        REPLICAS,
        bytes as f64 / 1024.0 / (WORKLOADS * REPLICAS) as f64,
        mib(bytes as f64),
        received.as_secs_f64(),
        mib(store_bytes as f64),
        merging.as_secs_f64(),
        summary.len(),
        summary[0].0,
        summary[0].1,
        summary[0].2,
        peak as f64 / 1024.0
    );
    println!("merge_seconds {:.3}", merging.as_secs_f64());
    println!("peak_mib {:.1}", peak as f64 / 1024.0);
}

/// What a merge came to, to check that both ways agree.
fn shape(merged: &imprint::controller::merge::MergedWorkload) -> (usize, usize, usize) {
    let c = &merged.containers[0];
    (c.syscalls.len(), c.root_writes.len(), c.executables.len())
}

/// A fixed pseudo-random 64-bit value for `n` (splitmix64).
fn mix(n: usize) -> u64 {
    let mut z = (n as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Report `i`: workload `i / REPLICAS`, replica `i % REPLICAS`: 4,300 file
/// entries under the paths a large application reads (one in ten its own:
/// per-pod caches and temporary files), 60 programs, 200 endpoints, 120
/// syscalls, 3 capabilities.
fn synthetic(i: usize) -> ContainerBehaviorReport {
    let workload = i / REPLICAS;
    let replica = i % REPLICAS;
    let names: Vec<&str> = (0..450)
        .filter_map(|nr| syscalls::x86_64::Sysno::new(nr).map(|s| s.name()))
        .collect();
    let syscalls: BTreeSet<String> = (0..120)
        .map(|k| names[(workload * 7 + k * 3 + (k % 5) * replica) % names.len()].to_string())
        .collect();
    let files = (0..FILES)
        .map(|k| {
            // Content-addressed names (as in package caches and bundlers'
            // output) so that the JSON compresses as real paths do, not as
            // a counter does.
            let path = if k % OWN_EVERY == 0 {
                format!(
                    "/var/cache/app-{workload}/pods/replica-{replica}/session-cache/{:016x}/entry-{k:05}.bin",
                    mix(workload * 1_000_003 + replica * 10_007 + k)
                )
            } else {
                format!(
                    "/usr/share/app-{workload}/resources/component-{:03}/{:016x}/messages-{k:05}.properties",
                    k % 97,
                    mix(workload * 1_000_003 + k)
                )
            };
            FileAccess {
                path,
                access: if k % 50 == 0 {
                    BTreeSet::from([Access::Read, Access::Write])
                } else {
                    BTreeSet::from([Access::Read])
                },
            }
        })
        .collect();
    let executables = (0..60)
        .map(|k| Executable {
            path: format!("/usr/lib/app-{workload}/bin/helper-{k}"),
            args: vec![
                format!("helper-{k}"),
                "--config".into(),
                "/etc/app.conf".into(),
            ],
            count: 3,
            euid: 1000,
            ..Executable::default()
        })
        .collect();
    let network = (0..200)
        .map(|k| NetworkEndpoint {
            direction: if k % 2 == 0 {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            protocol: Protocol::Tcp,
            address: format!("10.{}.{}.{}", workload, k % 200, replica),
            port: 8000 + (k % 50) as u16,
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
    let spec = ContainerBehaviorReportSpec {
        subject: Subject {
            node: Some(format!("node-{}", replica % 20)),
            namespace: Some(format!("team-{workload}")),
            pod: Some(format!("app-{workload}-{replica}")),
            pod_uid: Some(format!("uid-{workload}-{replica}")),
            container: Some("app".into()),
            workload: Some(WorkloadRef {
                kind: "Deployment".into(),
                name: format!("app-{workload}"),
            }),
            ..Subject::default()
        },
        syscalls: SyscallSet {
            arch: "x86_64".into(),
            names: syscalls.into_iter().collect(),
            unknown_numbers: Vec::new(),
            arguments: Vec::new(),
        },
        files,
        executables,
        network,
        capabilities,
        ..ContainerBehaviorReportSpec::default()
    };
    let mut report = ContainerBehaviorReport::new(&format!("app-{workload}-{replica}-app"), spec);
    report.metadata.namespace = Some(format!("team-{workload}"));
    report
}
