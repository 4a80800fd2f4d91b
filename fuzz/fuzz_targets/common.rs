//! What the agent and the controller do with a report they parsed: bound
//! it, merge it with itself, recommend from it.

use std::collections::BTreeMap;

use imprint::controller::merge::{merge_workload, writable_mounts};
use imprint::publish::bound;
use imprint::recommend;
use imprint_crd::profile::Overrides;
use imprint_crd::report::ContainerBehaviorReportSpec;

/// Runs every consumer of a tenant's report on `spec`.
pub fn consume(spec: ContainerBehaviorReportSpec) {
    let mut bounded = spec.clone();
    bound(&mut bounded, 16 * 1024);
    let mut doubled = spec.clone();
    doubled.absorb(&bounded);
    let reports = [&spec, &bounded, &doubled];
    let _ = merge_workload(&reports, &Overrides::default(), &writable_mounts(&reports));
    let _ = merge_workload(&reports, &Overrides::default(), &BTreeMap::new());
    let merged = recommend::merge(reports.iter().copied());
    let _ = recommend::oci_profile(&merged);
    let _ = recommend::spo_profile("fuzz", &merged, recommend::ArgumentStyle::Restricted);
    let _ = recommend::capabilities(&merged);
}
