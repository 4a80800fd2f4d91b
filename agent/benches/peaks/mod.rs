//! What the memory benchmarks share: each way runs in a process of its own
//! (so that each peak, VmHWM, is its own), prints its figures as
//! `key value` lines, and the parent compares them; and the controller's
//! merge of a store, as the controller does it.

use std::collections::HashMap;

use imprint::controller::merge::{MergedWorkload, WorkloadMerge};
use imprint::controller::store::StoredReport;
use imprint_crd::profile::Overrides;

/// Merges `store` per workload as the controller does: one report parsed,
/// added and dropped at a time.
pub fn merge_as_the_controller(
    store: &[StoredReport],
    overrides: &Overrides,
) -> Vec<MergedWorkload> {
    let mut groups: HashMap<String, Vec<&StoredReport>> = HashMap::new();
    for report in store {
        groups
            .entry(format!("{:?}", report.workload))
            .or_default()
            .push(report);
    }
    groups
        .values()
        .map(|reports| {
            let mut merging = WorkloadMerge::new(overrides);
            for report in reports {
                merging.add(&report.spec().expect("parses"));
            }
            merging.finish(None).0
        })
        .collect()
}

/// Runs `run(mode)` when this process was started for `mode`; otherwise
/// starts itself once per mode, prints each one's output and returns them
/// in the order of `modes`. `None` for `cargo bench -- --list` and in a
/// child.
pub fn each_in_its_own_process(modes: &[&str], run: fn(&str)) -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return None;
    }
    if let Some(mode) = args.get(1).filter(|m| modes.contains(&m.as_str())) {
        run(mode);
        return None;
    }
    let outputs: Vec<String> = modes
        .iter()
        .map(|mode| {
            let out = std::process::Command::new(&args[0])
                .arg(mode)
                .output()
                .expect("runs itself");
            assert!(
                out.status.success(),
                "{mode}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    for output in &outputs {
        print!("{output}");
    }
    Some(outputs)
}

/// The figure printed as `key value` in `text` (NaN when absent).
pub fn figure(text: &str, key: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Peak resident memory of this process so far, KiB.
pub fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// `goal` met or not, as the summary says it.
pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
