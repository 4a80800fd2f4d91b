//! Reconciling one workload: find or create its BehaviorProfile, fold the
//! reports of deleted pods into the workload's archive (then release
//! them), merge the rest, write the SeccompProfiles and the status.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imprint_crd::profile::{BehaviorProfile, Phase, ProfileCondition};
use imprint_crd::report::ContainerBehaviorReportSpec;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use super::error::Error;
use super::merge;
use super::objects::{self, FIELD_MANAGER, profile_name};
use super::release::{self, Unfolded};
use super::seccomp::SeccompProfiles;
use super::status;
use super::store::{ReportStore, StoredReport, WorkloadKey};
use crate::metrics::ControllerMetrics;

/// What every reconcile uses.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Default time without anything new before a profile is Stable.
    pub stability_window: Duration,
    /// The controller's metrics.
    pub metrics: ControllerMetrics,
    /// Where Events go.
    pub recorder: Recorder,
    /// The SeccompProfile writer.
    pub seccomp: SeccompProfiles,
}

/// The controller's state: its context, the reports and the profiles.
pub struct Controller {
    /// What every reconcile uses.
    pub context: Context,
    /// Every report, compact.
    pub reports: ReportStore,
    /// Every BehaviorProfile.
    pub profiles: Store<BehaviorProfile>,
}

impl Controller {
    /// Every workload with a report or a profile.
    pub fn all_keys(&self) -> HashSet<WorkloadKey> {
        let mut keys: HashSet<WorkloadKey> = self
            .reports
            .all()
            .filter_map(|r| r.workload.clone())
            .collect();
        keys.extend(
            self.profiles
                .state()
                .iter()
                .filter_map(|p| Some((p.namespace()?, p.spec.workload.clone()))),
        );
        keys
    }

    /// Reconciles every workload of `batch`, counting failures by kind;
    /// first releases the held reports no workload's reconcile will.
    pub async fn reconcile_all(&mut self, batch: Vec<WorkloadKey>) {
        let swept = release::sweep(self.reports.all(), Timestamp::now().as_second());
        for (report, why) in swept {
            if let Err(error) = release::release_unfolded(&self.context, &report, why).await {
                self.context.metrics.reconcile_error(error.metric_label());
                warn!(error = %error, "releasing a report failed (retried at the next resync)");
            }
        }
        let wanted: HashSet<&WorkloadKey> = batch.iter().collect();
        let mut grouped: HashMap<WorkloadKey, Vec<Arc<StoredReport>>> = HashMap::new();
        for report in self.reports.all() {
            if let Some(key) = &report.workload
                && wanted.contains(key)
            {
                grouped.entry(key.clone()).or_default().push(report.clone());
            }
        }
        for key in batch {
            let reports = grouped.remove(&key).unwrap_or_default();
            let started = Instant::now();
            let existing = self
                .profiles
                .get(&ObjectRef::new(&profile_name(&key.1)).within(&key.0));
            if let Err(error) =
                reconcile(&mut self.context, &key, existing.as_deref(), reports).await
            {
                self.context.metrics.reconcile_error(error.metric_label());
                warn!(namespace = %key.0, workload = %key.1.name, error = %error, "reconcile failed (retried at the next resync)");
            }
            self.context
                .metrics
                .reconcile_duration
                .observe(started.elapsed().as_secs_f64());
        }
        let mut by_phase: BTreeMap<&str, i64> = [("Learning", 0), ("Stable", 0)].into();
        for profile in self.profiles.state() {
            let phase = match profile.status.as_ref().map(|s| s.phase) {
                Some(Phase::Stable) => "Stable",
                _ => "Learning",
            };
            *by_phase.entry(phase).or_default() += 1;
        }
        for (phase, count) in by_phase {
            self.context.metrics.set_profiles(phase, count);
        }
    }
}

/// Brings one workload's BehaviorProfile and SeccompProfiles up to date;
/// `existing` is the profile as the store has it.
pub async fn reconcile(
    context: &mut Context,
    key: &WorkloadKey,
    existing: Option<&BehaviorProfile>,
    reports: Vec<Arc<StoredReport>>,
) -> Result<(), Error> {
    let (namespace, workload) = key;
    let name = profile_name(workload);
    let api = Api::<BehaviorProfile>::namespaced(context.client.clone(), namespace);
    let profile_error = |source| Error::Profile {
        name: name.clone(),
        source,
    };
    let existing = match existing {
        Some(profile) => Some(profile.clone()),
        None => api.get_opt(&name).await.map_err(profile_error)?,
    };
    let profile = match existing {
        Some(profile) => profile,
        None if reports.is_empty() => return Ok(()),
        None => match api
            .create(
                &PostParams::default(),
                &objects::new_profile(namespace, workload),
            )
            .await
        {
            Err(error) if release::namespace_terminating(&error) => {
                return release_all(context, &reports, Unfolded::NamespaceTerminating).await;
            }
            Ok(created) => {
                info!(namespace, name, "BehaviorProfile created");
                created
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                api.get(&name).await.map_err(profile_error)?
            }
            Err(error) => return Err(profile_error(error)),
        },
    };
    if profile.metadata.deletion_timestamp.is_some() {
        return release_all(context, &reports, Unfolded::ProfileDeleted).await;
    }

    let live = fold(context, &profile, &reports).await?;
    let specs: Vec<&ContainerBehaviorReportSpec> = live.iter().collect();
    let merged = merge::merge_workload(
        &specs,
        &profile.spec.overrides,
        &merge::writable_mounts(&specs),
    );
    context.metrics.merges.inc();
    context
        .metrics
        .skipped_entries
        .inc_by(merged.skipped as u64);
    let mut status = status::compute(
        &profile,
        merged,
        &specs,
        context.stability_window,
        Timestamp::now().as_second(),
    );
    if let Some(error) = context.seccomp.apply(&profile, &status).await {
        status.conditions.push(ProfileCondition {
            type_: "SeccompProfilesWritten".into(),
            status: "False".into(),
            reason: "ApiError".into(),
            message: error,
        });
    }
    status::publish(&api, &context.recorder, &profile, status)
        .await
        .map_err(|source| Error::Status {
            name: name.clone(),
            source,
        })
}

/// Releases every held report of `reports` without folding it.
async fn release_all(
    context: &Context,
    reports: &[Arc<StoredReport>],
    why: Unfolded,
) -> Result<(), Error> {
    for report in reports.iter().filter(|r| release::held(r)) {
        release::release_unfolded(context, report, why).await?;
    }
    Ok(())
}

/// Folds the reports of deleted pods into the workload's archives and
/// releases them; returns the specs to merge (live reports and archives).
async fn fold(
    context: &Context,
    profile: &BehaviorProfile,
    reports: &[Arc<StoredReport>],
) -> Result<Vec<ContainerBehaviorReportSpec>, Error> {
    let namespace = profile.namespace().unwrap_or_default();
    let workload = &profile.spec.workload;
    let mut live: Vec<ContainerBehaviorReportSpec> = Vec::new();
    let mut archives: BTreeMap<String, ContainerBehaviorReportSpec> = BTreeMap::new();
    let mut leaving = Vec::new();
    for report in reports {
        let spec = match report.spec() {
            Ok(spec) => spec,
            Err(error) => {
                warn!(%error, report = %report.name, "report kept unreadable; skipped");
                continue;
            }
        };
        if report.archive {
            archives.insert(report.container.clone(), spec);
        } else if report.deleting() {
            leaving.push((report.clone(), spec));
        } else {
            live.push(spec);
        }
    }
    for (report, folded) in leaving {
        if !release::held(&report) {
            continue;
        }
        let container = report.container.clone();
        let archive = archives.entry(container.clone()).or_insert_with(|| {
            let mut spec = ContainerBehaviorReportSpec::default();
            spec.subject.namespace = Some(namespace.clone());
            spec.subject.container = Some(container.clone());
            spec.subject.workload = Some(workload.clone());
            spec.syscalls.arch = folded.syscalls.arch.clone();
            spec
        });
        archive.absorb(&folded);
        let object = objects::archive(profile, &container, archive);
        let name = object.name_any();
        let written = Api::<imprint_crd::report::ContainerBehaviorReport>::namespaced(
            context.client.clone(),
            &namespace,
        )
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await;
        match written {
            Ok(_) => {}
            Err(error) if release::namespace_terminating(&error) => {
                release::release_unfolded(context, &report, Unfolded::NamespaceTerminating).await?;
                continue;
            }
            Err(source) => return Err(Error::Archive { name, source }),
        }
        release::release(context, &report).await?;
        context.metrics.folded_reports.inc();
        info!(namespace, report = %report.name, "folded the report of a deleted pod into the archive");
    }
    live.extend(archives.into_values());
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::mock_api::{self, Call};
    use crate::controller::seccomp::SeccompApi;
    use crate::publish::FOLD_FINALIZER;
    use crate::recommend::tests::with_baseline;
    use imprint_crd::report::{ContainerBehaviorReport, WorkloadRef};
    use imprint_crd::spo;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::{ApiResource, GroupVersionKind};
    use kube::discovery::Scope;
    use kube::runtime::events::Reporter;

    fn web() -> WorkloadRef {
        WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    fn profile() -> BehaviorProfile {
        let mut profile = objects::new_profile("shop", &web());
        profile.metadata.uid = Some("uid-profile".into());
        profile
    }

    /// The report of container nginx of pod `pod`, which made `syscalls`.
    fn report(pod: &str, syscalls: &[&str], deleting: bool) -> Arc<StoredReport> {
        let mut spec = ContainerBehaviorReportSpec::default();
        spec.subject.namespace = Some("shop".into());
        spec.subject.pod = Some(pod.into());
        spec.subject.container = Some("nginx".into());
        spec.subject.workload = Some(web());
        spec.syscalls.arch = "x86_64".into();
        spec.syscalls.names = syscalls.iter().map(|s| s.to_string()).collect();
        let mut report = ContainerBehaviorReport::new(&format!("{pod}-nginx"), spec);
        report.metadata.namespace = Some("shop".into());
        report.metadata.finalizers = Some(vec![FOLD_FINALIZER.into()]);
        report.metadata.resource_version = Some("7".into());
        if deleting {
            report.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        }
        Arc::new(StoredReport::keep(&report))
    }

    fn context(client: Client) -> Context {
        let gvk = GroupVersionKind::gvk(spo::GROUP, "v1", "SeccompProfile");
        Context {
            stability_window: Duration::from_secs(600),
            metrics: ControllerMetrics::default(),
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: FIELD_MANAGER.into(),
                    instance: None,
                },
            ),
            seccomp: SeccompProfiles::with_resource(
                client.clone(),
                SeccompApi::V1,
                ApiResource::from_gvk_with_plural(&gvk, "seccompprofiles"),
                Scope::Cluster,
            ),
            client,
        }
    }

    fn names(value: &serde_json::Value) -> Vec<&str> {
        value
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default()
    }

    fn find<'a>(calls: &'a [Call], method: &str, path_end: &str) -> Option<(usize, &'a Call)> {
        calls
            .iter()
            .enumerate()
            .find(|(_, c)| c.method == method && c.path.ends_with(path_end))
    }

    #[tokio::test]
    async fn a_deleted_pods_report_is_archived_then_released_then_merged() {
        let (client, calls) = mock_api::client(profile(), |_, _| None);
        let mut context = context(client);
        let key = ("shop".to_string(), web());
        let reports = vec![
            report("web-1", &["read", "write"], false),
            report("web-2", &["personality", "read"], true),
        ];
        reconcile(&mut context, &key, Some(&profile()), reports)
            .await
            .unwrap();
        let calls = calls.lock().unwrap().clone();

        let (archived, archive) = find(
            &calls,
            "PATCH",
            "/namespaces/shop/containerbehaviorreports/deployment-web-nginx-archive",
        )
        .expect("the archive is written");
        assert_eq!(
            names(&archive.body["spec"]["syscalls"]["names"]),
            ["personality", "read"],
            "the archive holds the deleted pod's behavior, and only it"
        );
        let (released, release) = find(
            &calls,
            "PATCH",
            "/namespaces/shop/containerbehaviorreports/web-2-nginx",
        )
        .expect("the folded report is released");
        assert!(archived < released, "released only once archived");
        assert_eq!(
            release.body["metadata"]["finalizers"],
            serde_json::json!([])
        );
        assert_eq!(release.body["metadata"]["resourceVersion"], "7");
        assert!(
            find(&calls, "PATCH", "/containerbehaviorreports/web-1-nginx").is_none(),
            "a live report is left alone"
        );

        let (_, seccomp) = find(&calls, "PATCH", "/seccompprofiles/shop-web-nginx")
            .expect("the SeccompProfile is written");
        assert_eq!(
            names(&seccomp.body["spec"]["syscalls"][0]["names"]),
            with_baseline(&["personality", "read", "write"])
        );
        assert_eq!(seccomp.body["spec"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            seccomp.body["metadata"]["labels"]["imprint.dev/profile-name"],
            "deployment-web"
        );

        let (_, status) = find(
            &calls,
            "PATCH",
            "/namespaces/shop/behaviorprofiles/deployment-web/status",
        )
        .expect("the status is written");
        let container = &status.body["status"]["containers"][0];
        assert_eq!(
            names(&container["syscalls"]),
            with_baseline(&["personality", "read", "write"])
        );
        assert_eq!(container["seccompProfile"], "shop-web-nginx");
        assert_eq!(status.body["status"]["phase"], "Learning");
        let reasons: Vec<&str> = calls
            .iter()
            .filter(|c| c.method == "POST" && c.path.ends_with("/events"))
            .filter_map(|c| c.body["reason"].as_str())
            .collect();
        assert_eq!(reasons, ["BehaviorChanged"]);
        assert_eq!(context.metrics.folded_reports.get(), 1);
    }

    #[tokio::test]
    async fn a_report_is_never_released_when_its_archive_was_not_written() {
        let (client, calls) = mock_api::client(profile(), |method, path| {
            (method == "PATCH" && path.ends_with("-archive")).then_some(500)
        });
        let mut context = context(client);
        let key = ("shop".to_string(), web());
        let reports = vec![report("web-2", &["personality"], true)];
        let error = reconcile(&mut context, &key, Some(&profile()), reports)
            .await
            .unwrap_err();
        assert_eq!(error.metric_label(), "archive");
        let calls = calls.lock().unwrap().clone();
        assert!(
            find(&calls, "PATCH", "/containerbehaviorreports/web-2-nginx").is_none(),
            "the report keeps its finalizer: {calls:?}"
        );
        assert!(find(&calls, "PATCH", "/status").is_none());
        assert_eq!(context.metrics.folded_reports.get(), 0);
    }

    #[tokio::test]
    async fn in_a_namespace_being_deleted_reports_are_released_unfolded() {
        // The profile went with the namespace; creating it again is refused.
        let (client, calls) =
            mock_api::client(profile(), |method, _| (method == "POST").then_some(403));
        let mut context = context(client);
        let key = ("shop".to_string(), web());
        let reports = vec![
            report("web-1", &["read"], false),
            report("web-2", &["personality"], true),
        ];
        reconcile(&mut context, &key, None, reports).await.unwrap();
        let calls = calls.lock().unwrap().clone();
        let (_, release) = find(&calls, "PATCH", "/containerbehaviorreports/web-2-nginx")
            .expect("the deleted pod's report is released");
        assert_eq!(
            release.body["metadata"]["finalizers"],
            serde_json::json!([])
        );
        assert!(find(&calls, "PATCH", "-archive").is_none(), "{calls:?}");
        assert!(
            find(&calls, "PATCH", "/containerbehaviorreports/web-1-nginx").is_none(),
            "a live report is left alone"
        );
        assert_eq!(
            context
                .metrics
                .released_unfolded
                .get_or_create(&crate::metrics::KindLabel {
                    kind: "namespace_terminating".into()
                })
                .get(),
            1
        );
    }

    #[tokio::test]
    async fn an_archive_refused_in_a_namespace_being_deleted_releases_the_report() {
        let (client, calls) = mock_api::client(profile(), |method, path| {
            (method == "PATCH" && path.ends_with("-archive")).then_some(403)
        });
        let mut context = context(client);
        let key = ("shop".to_string(), web());
        let reports = vec![report("web-2", &["personality"], true)];
        reconcile(&mut context, &key, Some(&profile()), reports)
            .await
            .unwrap();
        let calls = calls.lock().unwrap().clone();
        assert!(
            find(&calls, "PATCH", "/containerbehaviorreports/web-2-nginx").is_some(),
            "{calls:?}"
        );
        assert_eq!(context.metrics.folded_reports.get(), 0);
    }

    #[tokio::test]
    async fn a_profile_being_deleted_releases_its_reports() {
        let (client, calls) = mock_api::client(profile(), |_, _| None);
        let mut context = context(client);
        let mut deleted = profile();
        deleted.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let key = ("shop".to_string(), web());
        let reports = vec![report("web-2", &["personality"], true)];
        reconcile(&mut context, &key, Some(&deleted), reports)
            .await
            .unwrap();
        let calls = calls.lock().unwrap().clone();
        assert!(find(&calls, "PATCH", "/containerbehaviorreports/web-2-nginx").is_some());
        assert!(find(&calls, "PATCH", "-archive").is_none());
    }

    #[tokio::test]
    async fn a_workload_without_reports_or_profile_gets_none() {
        let (client, calls) = mock_api::client(profile(), |_, _| None);
        let mut context = context(client);
        reconcile(&mut context, &("shop".to_string(), web()), None, Vec::new())
            .await
            .unwrap();
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].method, "GET");
    }
}
