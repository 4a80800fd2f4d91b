//! The controller's copy of every ContainerBehaviorReport, kept small: the
//! few metadata fields it acts on, and the spec as JSON bytes (about a third
//! of the parsed size), parsed again only for the workload being reconciled.
//! Fed by a watcher; the same list-then-watch semantics as a reflector store.

use std::collections::HashMap;
use std::sync::Arc;

use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec, WorkloadRef};
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::publish::labels;

/// One workload: namespace and owning workload.
pub type WorkloadKey = (String, WorkloadRef);

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
            spec: serde_json::to_vec(&report.spec)
                .unwrap_or_default()
                .into_boxed_slice(),
        }
    }

    /// Whether it is being deleted.
    pub fn deleting(&self) -> bool {
        self.deleting_since.is_some()
    }

    /// The report's spec, parsed again.
    pub fn spec(&self) -> Result<ContainerBehaviorReportSpec, serde_json::Error> {
        serde_json::from_slice(&self.spec)
    }

    /// Bytes kept for the spec.
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
    pub fn apply(&mut self, event: watcher::Event<ContainerBehaviorReport>) -> Vec<WorkloadKey> {
        let key = |r: &StoredReport| (r.namespace.clone(), r.name.clone());
        match event {
            watcher::Event::Apply(report) => {
                let kept = Arc::new(StoredReport::keep(&report));
                let mut touched: Vec<WorkloadKey> = kept.workload.clone().into_iter().collect();
                if let Some(old) = self.reports.insert(key(&kept), kept)
                    && let Some(w) = old.workload.clone()
                    && !touched.contains(&w)
                {
                    touched.push(w);
                }
                touched
            }
            watcher::Event::Delete(report) => {
                let kept = StoredReport::keep(&report);
                self.reports.remove(&key(&kept));
                kept.workload.into_iter().collect()
            }
            watcher::Event::Init => {
                self.listing = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(report) => {
                let kept = Arc::new(StoredReport::keep(&report));
                self.listing
                    .get_or_insert_with(HashMap::new)
                    .insert(key(&kept), kept);
                Vec::new()
            }
            watcher::Event::InitDone => {
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
