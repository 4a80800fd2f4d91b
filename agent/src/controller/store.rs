//! The controller's copy of every ContainerBehaviorReport, kept small: the
//! few metadata fields it acts on, and the spec as zstd-compressed JSON
//! (large reports are mostly paths, which compress about tenfold), parsed
//! again only for the workload being reconciled, one report at a time.
//! Fed by a watcher whose events are made compact as they arrive
//! ([`ReportEvent`]); the same list-then-watch semantics as a reflector
//! store.

use std::collections::HashMap;
use std::sync::Arc;

use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec, WorkloadRef};
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::publish::labels;

/// One workload: namespace and owning workload.
pub type WorkloadKey = (String, WorkloadRef);

/// zstd's level for kept specs: fast (hundreds of MB/s), still about
/// tenfold on report JSON.
const COMPRESSION_LEVEL: i32 = 3;

/// Why a kept spec cannot be had again.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The kept bytes do not decompress.
    #[error("kept spec does not decompress: {0}")]
    Decompress(std::io::Error),
    /// The spec does not parse.
    #[error("spec does not parse: {0}")]
    Parse(serde_json::Error),
}

/// A watcher event with each report already made compact (so that events
/// waiting for the controller's loop hold the compact form, not the
/// parsed report).
#[derive(Debug)]
pub enum ReportEvent {
    /// Added or changed.
    Apply(StoredReport),
    /// Deleted.
    Delete(StoredReport),
    /// A (re)list begins.
    Init,
    /// One report of the list.
    InitApply(StoredReport),
    /// The list is complete.
    InitDone,
}

impl From<watcher::Event<ContainerBehaviorReport>> for ReportEvent {
    fn from(event: watcher::Event<ContainerBehaviorReport>) -> Self {
        match event {
            watcher::Event::Apply(r) => ReportEvent::Apply(StoredReport::keep(&r)),
            watcher::Event::Delete(r) => ReportEvent::Delete(StoredReport::keep(&r)),
            watcher::Event::Init => ReportEvent::Init,
            watcher::Event::InitApply(r) => ReportEvent::InitApply(StoredReport::keep(&r)),
            watcher::Event::InitDone => ReportEvent::InitDone,
        }
    }
}

/// What the controller keeps of one report.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReport {
    /// Namespace of the report.
    pub namespace: String,
    /// Name of the report.
    pub name: String,
    /// The workload it belongs to (`None`: not a pod's report).
    pub workload: Option<WorkloadKey>,
    /// Container name in the pod.
    pub container: String,
    /// When its deletion was asked for (its pod went), seconds since the
    /// epoch.
    pub deleting_since: Option<i64>,
    /// Its finalizers.
    pub finalizers: Vec<String>,
    /// An archive of folded reports.
    pub archive: bool,
    /// For optimistic concurrency on writes.
    pub resource_version: Option<String>,
    /// A profile covers it (`spec.covered`).
    pub covered: bool,
    spec: Box<[u8]>,
}

impl StoredReport {
    /// Keeps what the controller needs of `report`.
    pub fn keep(report: &ContainerBehaviorReport) -> Self {
        let namespace = report.namespace().unwrap_or_default();
        StoredReport {
            workload: report
                .spec
                .subject
                .workload
                .clone()
                .map(|w| (namespace.clone(), w)),
            namespace,
            name: report.name_any(),
            container: report.spec.subject.container.clone().unwrap_or_default(),
            deleting_since: report
                .metadata
                .deletion_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            finalizers: report.finalizers().to_vec(),
            archive: report
                .labels()
                .get(labels::ARCHIVE)
                .is_some_and(|v| v == "true"),
            resource_version: report.resource_version(),
            covered: report.spec.covered.is_some(),
            spec: serde_json::to_vec(&report.spec)
                .ok()
                .and_then(|json| zstd::bulk::compress(&json, COMPRESSION_LEVEL).ok())
                .unwrap_or_default()
                .into_boxed_slice(),
        }
    }

    /// Whether it is being deleted.
    pub fn deleting(&self) -> bool {
        self.deleting_since.is_some()
    }

    /// The report's spec, parsed again.
    pub fn spec(&self) -> Result<ContainerBehaviorReportSpec, SpecError> {
        let json = zstd::stream::decode_all(&self.spec[..]).map_err(SpecError::Decompress)?;
        serde_json::from_slice(&json).map_err(SpecError::Parse)
    }

    /// Bytes kept for the spec (compressed).
    pub fn spec_bytes(&self) -> usize {
        self.spec.len()
    }
}

/// Every report, by namespace and name.
#[derive(Debug, Default)]
pub struct ReportStore {
    reports: HashMap<(String, String), Arc<StoredReport>>,
    /// A (re)list in progress: the new state, swapped in when complete.
    listing: Option<HashMap<(String, String), Arc<StoredReport>>>,
    ready: bool,
}

impl ReportStore {
    /// Applies one watcher event; returns the workloads it touched.
    pub fn apply(&mut self, event: impl Into<ReportEvent>) -> Vec<WorkloadKey> {
        let key = |r: &StoredReport| (r.namespace.clone(), r.name.clone());
        match event.into() {
            ReportEvent::Apply(report) => {
                let kept = Arc::new(report);
                let mut touched: Vec<WorkloadKey> = kept.workload.clone().into_iter().collect();
                if let Some(old) = self.reports.insert(key(&kept), kept)
                    && let Some(w) = old.workload.clone()
                    && !touched.contains(&w)
                {
                    touched.push(w);
                }
                touched
            }
            ReportEvent::Delete(kept) => {
                self.reports.remove(&key(&kept));
                kept.workload.into_iter().collect()
            }
            ReportEvent::Init => {
                self.listing = Some(HashMap::new());
                Vec::new()
            }
            ReportEvent::InitApply(report) => {
                let kept = Arc::new(report);
                self.listing
                    .get_or_insert_with(HashMap::new)
                    .insert(key(&kept), kept);
                Vec::new()
            }
            ReportEvent::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let old = std::mem::replace(&mut self.reports, listed);
                self.ready = true;
                // Everything in either state may have changed.
                let mut touched: Vec<WorkloadKey> = Vec::new();
                for report in old.values().chain(self.reports.values()) {
                    if let Some(w) = &report.workload
                        && !touched.contains(w)
                    {
                        touched.push(w.clone());
                    }
                }
                touched
            }
        }
    }

    /// Whether the first list has completed.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Every report.
    pub fn all(&self) -> impl Iterator<Item = &Arc<StoredReport>> {
        self.reports.values()
    }

    /// Number of reports.
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    /// Whether there are no reports.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, workload: &str) -> ContainerBehaviorReport {
        let mut spec = ContainerBehaviorReportSpec::default();
        spec.subject.container = Some("app".into());
        spec.subject.workload = Some(WorkloadRef {
            kind: "Deployment".into(),
            name: workload.into(),
        });
        spec.syscalls.names = vec!["read".into(), "write".into()];
        let mut r = ContainerBehaviorReport::new(name, spec);
        r.metadata.namespace = Some("shop".into());
        r
    }

    #[test]
    fn keeps_the_spec_and_follows_list_then_watch() {
        let mut store = ReportStore::default();
        store.apply(watcher::Event::Init);
        store.apply(watcher::Event::InitApply(report("a", "web")));
        assert!(
            !store.is_ready() && store.is_empty(),
            "a list counts once complete"
        );
        let touched = store.apply(watcher::Event::InitDone);
        assert!(store.is_ready());
        assert_eq!(touched.len(), 1);
        let kept = store.all().next().unwrap().clone();
        assert_eq!(kept.spec().unwrap().syscalls.names, ["read", "write"]);
        assert_eq!(kept.container, "app");

        // A report moving to another workload touches both.
        let touched = store.apply(watcher::Event::Apply(report("a", "api")));
        assert_eq!(touched.len(), 2);
        let touched = store.apply(watcher::Event::Delete(report("a", "api")));
        assert_eq!(touched[0].1.name, "api");
        assert!(store.is_empty());

        // A relist drops what is gone and touches it.
        store.apply(watcher::Event::Apply(report("b", "db")));
        store.apply(watcher::Event::Init);
        let touched = store.apply(watcher::Event::InitDone);
        assert!(store.is_empty());
        assert_eq!(touched[0].1.name, "db");
    }
}
