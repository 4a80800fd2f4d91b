//! No deletion waits on imprint's fold finalizer forever: a report that
//! cannot be folded into its workload's archive is released unfolded, with
//! a metric, a log line and (where the namespace still takes one) a Warning
//! Event saying why. That is the case in a namespace being deleted (what
//! was learnt there goes with it), for a BehaviorProfile being deleted, for
//! a report that names no workload or whose spec does not parse, and for
//! any report still held past [`FOLD_DEADLINE`].

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::Api;
use kube::runtime::events::EventType;
use tracing::warn;

use super::error::Error;
use super::reconcile::Context;
use super::status::{self, reasons};
use super::store::StoredReport;
use crate::publish::{FOLD_FINALIZER, release_fold};

/// Longest a deleted report waits for its fold before it is released
/// unfolded.
pub const FOLD_DEADLINE: Duration = Duration::from_secs(300);

/// Why a report was released without being folded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfolded {
    /// Its namespace is being deleted: nothing can be written there.
    NamespaceTerminating,
    /// Its BehaviorProfile is being deleted.
    ProfileDeleted,
    /// It names no workload.
    NoWorkload,
    /// Its spec does not parse.
    Unreadable,
    /// Its fold did not succeed within [`FOLD_DEADLINE`].
    Deadline,
}

impl Unfolded {
    /// Every metric label, so each series exists (at 0) from the start.
    pub const LABELS: [&'static str; 5] = [
        "namespace_terminating",
        "profile_deleted",
        "no_workload",
        "unreadable",
        "deadline",
    ];

    /// The `kind` label of `imprint_controller_released_unfolded_total`.
    pub fn label(self) -> &'static str {
        Self::LABELS[self as usize]
    }

    /// What it means, for the log and the Event.
    fn why(self) -> String {
        match self {
            Unfolded::NamespaceTerminating => {
                "its namespace is being deleted; what was learnt there goes with it".into()
            }
            Unfolded::ProfileDeleted => {
                "its BehaviorProfile is being deleted; what was learnt goes with it".into()
            }
            Unfolded::NoWorkload => {
                "it names no workload, so there is no archive to fold it into".into()
            }
            Unfolded::Unreadable => "its spec does not parse".into(),
            Unfolded::Deadline => format!(
                "its fold did not succeed within {}s (see the controller's reconcile errors)",
                FOLD_DEADLINE.as_secs()
            ),
        }
    }
}

/// Whether a deleted report is held by the fold finalizer.
pub fn held(report: &StoredReport) -> bool {
    report.deleting() && report.finalizers.iter().any(|f| f == FOLD_FINALIZER)
}

/// Removes the fold finalizer from `report` (at the resource version the
/// store saw); `false` when there was nothing to release.
pub async fn release(context: &Context, report: &StoredReport) -> Result<bool, Error> {
    context.leadership.ensure()?;
    let api = Api::namespaced(context.client.clone(), &report.namespace);
    release_fold(
        &api,
        &report.name,
        &report.finalizers,
        report.resource_version.as_deref(),
    )
    .await
    .map_err(|source| Error::Release {
        name: report.name.clone(),
        source,
    })
}

/// The held reports no reconcile of a workload will release, and why:
/// those naming no workload, those whose spec does not parse, and those
/// held past the deadline (`now`: seconds since the epoch).
pub fn sweep<'a>(
    reports: impl Iterator<Item = &'a Arc<StoredReport>>,
    now: i64,
) -> Vec<(Arc<StoredReport>, Unfolded)> {
    let deadline = i64::try_from(FOLD_DEADLINE.as_secs()).unwrap_or(i64::MAX);
    reports
        .filter(|r| held(r))
        .filter_map(|r| {
            let why = if r.workload.is_none() {
                Unfolded::NoWorkload
            } else if r.spec().is_err() {
                Unfolded::Unreadable
            } else if r.deleting_since.is_some_and(|t| now - t > deadline) {
                Unfolded::Deadline
            } else {
                return None;
            };
            Some((r.clone(), why))
        })
        .collect()
}

pub use crate::publish::plan::namespace_terminating;

/// Releases `report` without folding it: the finalizer goes, the loss is
/// counted, logged and told in a Warning Event on the report.
pub async fn release_unfolded(
    context: &Context,
    report: &StoredReport,
    why: Unfolded,
) -> Result<(), Error> {
    if !release(context, report).await? {
        return Ok(());
    }
    context.metrics.released_unfolded(why.label());
    warn!(
        namespace = report.namespace,
        report = report.name,
        reason = why.label(),
        "released a deleted report without folding it: {}",
        why.why()
    );
    if why != Unfolded::NamespaceTerminating {
        let reference = ObjectReference {
            api_version: Some("imprint.dev/v1alpha1".into()),
            kind: Some("ContainerBehaviorReport".into()),
            namespace: Some(report.namespace.clone()),
            name: Some(report.name.clone()),
            ..ObjectReference::default()
        };
        let note = format!("released without folding into the archive: {}", why.why());
        status::event(
            &context.recorder,
            &reference,
            EventType::Warning,
            reasons::RELEASED_UNFOLDED,
            &note,
        )
        .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec, WorkloadRef};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn report(name: &str, workload: bool, deleted_at: Option<i64>) -> Arc<StoredReport> {
        let mut spec = ContainerBehaviorReportSpec::default();
        if workload {
            spec.subject.workload = Some(WorkloadRef {
                kind: "Deployment".into(),
                name: "web".into(),
            });
        }
        let mut report = ContainerBehaviorReport::new(name, spec);
        report.metadata.namespace = Some("shop".into());
        report.metadata.finalizers = Some(vec![FOLD_FINALIZER.into()]);
        report.metadata.deletion_timestamp =
            deleted_at.map(|t| Time(Timestamp::from_second(t).unwrap()));
        Arc::new(StoredReport::keep(&report))
    }

    #[test]
    fn the_sweep_takes_what_no_workload_reconcile_would_release() {
        let now = 10_000;
        let reports = [
            report("live", true, None),
            report("folding", true, Some(now - 10)),
            report("orphan", false, Some(now - 10)),
            report("orphan-live", false, None),
            report("stuck", true, Some(now - 301)),
        ];
        let swept: Vec<(String, Unfolded)> = sweep(reports.iter(), now)
            .into_iter()
            .map(|(r, why)| (r.name.clone(), why))
            .collect();
        assert_eq!(
            swept,
            [
                ("orphan".to_string(), Unfolded::NoWorkload),
                ("stuck".to_string(), Unfolded::Deadline)
            ]
        );
    }

    #[test]
    fn a_write_refused_in_a_terminating_namespace_is_told_apart() {
        let refused = |code: u16, message: &str| {
            kube::Error::Api(
                kube::core::Status::failure(message, "Forbidden")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(namespace_terminating(&refused(
            403,
            "unable to create new content in namespace shop because it is being terminated"
        )));
        assert!(!namespace_terminating(&refused(403, "forbidden: RBAC")));
        assert!(!namespace_terminating(&refused(500, "is being terminated")));
    }

    #[test]
    fn labels_follow_the_variants() {
        assert_eq!(
            Unfolded::NamespaceTerminating.label(),
            "namespace_terminating"
        );
        assert_eq!(Unfolded::Deadline.label(), "deadline");
    }
}
