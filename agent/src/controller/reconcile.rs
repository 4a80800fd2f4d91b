//! Reconciling one workload: find or create its BehaviorProfile, fold the
//! reports of deleted pods into the workload's archive (then release
//! them), merge the rest, write the SeccompProfiles and the status.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imprint_crd::profile::{BehaviorProfile, Phase, ProfileCondition};
use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use tracing::{debug, info, warn};

use super::error::Error;
use super::leader::Leadership;
use super::merge;
use super::objects::{self, profile_name};
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
    /// Whether this replica may write (checked before every write).
    pub leadership: Leadership,
}

/// The longest one workload's reconcile may take (its calls included), so
/// that no call of a replica that lost the Lease is still under way when
/// another replica may lead (each write also checks the Lease first).
pub const RECONCILE_DEADLINE: Duration = Duration::from_secs(10);

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
            let result = tokio::time::timeout(
                RECONCILE_DEADLINE,
                reconcile(&mut self.context, &key, existing.as_deref(), reports),
            )
            .await
            .unwrap_or(Err(Error::TimedOut(RECONCILE_DEADLINE)));
            if let Err(error) = result {
                self.context.metrics.reconcile_error(error.metric_label());
                warn!(namespace = %key.0, workload = %key.1.name, error = %error, "reconcile failed (retried at the next resync)");
                if matches!(error, Error::NotLeading(_)) {
                    // The rest of the batch waits for the Lease (resync).
                    break;
                }
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
        None => match context
            .leadership
            .ensure()
            .map(|()| &api)?
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
    if let Some(error) = context
        .seccomp
        .apply(&profile, &status, &context.leadership)
        .await
    {
        status.conditions.push(ProfileCondition {
            type_: "SeccompProfilesWritten".into(),
            status: "False".into(),
            reason: "ApiError".into(),
            message: error,
        });
    }
    context.leadership.ensure()?;
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
    // One archive write per container takes every report leaving it, then
    // each is released: a Deployment scaled down by 100 is 100 releases
    // and one write, not 100 writes of a growing archive.
    let mut by_container: BTreeMap<String, Vec<(Arc<StoredReport>, ContainerBehaviorReportSpec)>> =
        BTreeMap::new();
    for (report, folded) in leaving {
        if release::held(&report) {
            by_container
                .entry(report.container.clone())
                .or_default()
                .push((report, folded));
        }
    }
    for (container, leaving) in by_container {
        let folded: Vec<&ContainerBehaviorReportSpec> = leaving.iter().map(|(_, f)| f).collect();
        match write_archive(context, profile, &container, &folded).await? {
            Archived::Written(spec) => {
                archives.insert(container, *spec);
            }
            Archived::NamespaceTerminating => {
                for (report, _) in &leaving {
                    release::release_unfolded(context, report, Unfolded::NamespaceTerminating)
                        .await?;
                }
                continue;
            }
        }
        for (report, _) in &leaving {
            release::release(context, report).await?;
            context.metrics.folded_reports.inc();
            info!(namespace, report = %report.name, "folded the report of a deleted pod into the archive");
        }
    }
    live.extend(archives.into_values());
    Ok(live)
}

/// What became of a fold into an archive.
enum Archived {
    /// The archive as written.
    Written(Box<ContainerBehaviorReportSpec>),
    /// The namespace is being deleted: nothing can be written there.
    NamespaceTerminating,
}

/// Conflicting writes to one archive tried again at most this often.
const ARCHIVE_ATTEMPTS: usize = 5;

/// Adds every `folded` report to the archive of `container` as the API
/// server holds it now (never as a store that may lag behind has it):
/// written at the resource version just read, read again and retried when
/// another write came between, so no fold overwrites another.
async fn write_archive(
    context: &Context,
    profile: &BehaviorProfile,
    container: &str,
    folded: &[&ContainerBehaviorReportSpec],
) -> Result<Archived, Error> {
    let namespace = profile.namespace().unwrap_or_default();
    let api = Api::<ContainerBehaviorReport>::namespaced(context.client.clone(), &namespace);
    let name = objects::archive_name(&profile.name_any(), container);
    let archive_error = |source| Error::Archive {
        name: name.clone(),
        source,
    };
    let mut conflict = None;
    for _ in 0..ARCHIVE_ATTEMPTS {
        let current = api.get_opt(&name).await.map_err(archive_error)?;
        let mut spec = match &current {
            Some(archive) => archive.spec.clone(),
            None => {
                let mut spec = ContainerBehaviorReportSpec::default();
                spec.subject.namespace = Some(namespace.clone());
                spec.subject.container = Some(container.to_string());
                spec.subject.workload = Some(profile.spec.workload.clone());
                spec.syscalls.arch = folded
                    .first()
                    .map(|f| f.syscalls.arch.clone())
                    .unwrap_or_default();
                spec
            }
        };
        for report in folded {
            spec.absorb(report);
        }
        let mut object = objects::archive(profile, container, &spec);
        context.leadership.ensure()?;
        let written = match current {
            Some(archive) => {
                object.metadata.resource_version = archive.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &object).await
            }
            None => api.create(&PostParams::default(), &object).await,
        };
        match written {
            Ok(written) => return Ok(Archived::Written(Box::new(written.spec))),
            Err(error) if release::namespace_terminating(&error) => {
                return Ok(Archived::NamespaceTerminating);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                debug!(archive = %name, "another write came between: read again");
                conflict = Some(kube::Error::Api(status));
            }
            Err(error) => return Err(archive_error(error)),
        }
    }
    Err(archive_error(
        conflict.expect("a conflict ended the attempts"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::mock_api::{self, Call};
    use crate::controller::objects::FIELD_MANAGER;
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
            leadership: Leadership::default(),
            client,
        }
    }

    /// A replica whose Lease is not held (its renewals stopped going
    /// through): a reconcile makes no write at all.
    #[tokio::test]
    async fn a_replica_that_cannot_renew_writes_nothing() {
        let (client, recorded) = mock_api::client(profile(), |_, _| None);
        let mut context = context(client.clone());
        let lease = crate::controller::leader::LeaderLease::new(
            client,
            "imprint",
            "imprint-controller",
            "me",
            Duration::from_secs(15),
        );
        context.leadership = Leadership::new(Some(Arc::new(lease)));
        let key = ("shop".to_string(), web());
        let reports = || {
            vec![
                report("web-1", &["read", "write"], false),
                report("web-2", &["personality", "read"], true),
            ]
        };
        let writes = || {
            recorded
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.method != "GET" && !c.path.ends_with("/events"))
                .count()
        };
        let result = reconcile(&mut context, &key, Some(&profile()), reports()).await;
        assert!(matches!(result, Err(Error::NotLeading(_))), "{result:?}");
        assert_eq!(writes(), 0, "{:?}", recorded.lock().unwrap());
        // Leading (a lone replica has no Lease), the same reconcile writes.
        context.leadership = Leadership::default();
        reconcile(&mut context, &key, Some(&profile()), reports())
            .await
            .unwrap();
        assert!(writes() >= 3, "archive, release, status at least");
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

        let (archived, archive) = find(&calls, "POST", "/namespaces/shop/containerbehaviorreports")
            .expect("the archive is written");
        assert_eq!(
            archive.body["metadata"]["name"],
            "deployment-web-nginx-archive"
        );
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

    /// The archive as the API server holds it already has a fold the
    /// controller's store has not seen yet (a watch one event behind), and
    /// another write comes between the controller's read and its write: the
    /// fold is written on top of both, never over them.
    #[tokio::test]
    async fn a_fold_never_overwrites_an_archive_it_has_not_read() {
        let archive_path = "/apis/imprint.dev/v1alpha1/namespaces/shop/containerbehaviorreports/deployment-web-nginx-archive";
        let objects = mock_api::Objects::default();
        let mut earlier = ContainerBehaviorReportSpec::default();
        earlier.syscalls.arch = "x86_64".into();
        earlier.syscalls.names = vec!["clone".into()];
        let mut stored = ContainerBehaviorReport::new("deployment-web-nginx-archive", earlier);
        stored.metadata.namespace = Some("shop".into());
        stored.metadata.resource_version = Some("5".into());
        objects.lock().unwrap().insert(
            archive_path.to_string(),
            serde_json::to_value(&stored).unwrap(),
        );
        // The first replace is refused: another write came between.
        let mut refused = false;
        let fail: mock_api::Fail = Box::new(move |method, _| {
            (method == "PUT" && !std::mem::replace(&mut refused, true)).then_some(409)
        });
        let (client, calls) = mock_api::client_with(profile(), fail, objects.clone());
        let mut context = context(client);
        let key = ("shop".to_string(), web());
        let reports = vec![report("web-2", &["personality", "read"], true)];
        reconcile(&mut context, &key, Some(&profile()), reports)
            .await
            .unwrap();
        let archive = objects.lock().unwrap()[archive_path].clone();
        assert_eq!(
            names(&archive["spec"]["syscalls"]["names"]),
            ["clone", "personality", "read"],
            "the earlier fold is kept"
        );
        let calls = calls.lock().unwrap().clone();
        let puts = calls.iter().filter(|c| c.method == "PUT").count();
        assert_eq!(puts, 2, "read again and written again after the conflict");
        assert!(find(&calls, "PATCH", "/containerbehaviorreports/web-2-nginx").is_some());
    }

    #[tokio::test]
    async fn a_report_is_never_released_when_its_archive_was_not_written() {
        let (client, calls) = mock_api::client(profile(), |method, path| {
            (method == "POST" && path.ends_with("/containerbehaviorreports")).then_some(500)
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
        assert!(
            find(&calls, "POST", "/containerbehaviorreports").is_none(),
            "{calls:?}"
        );
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
            (method == "POST" && path.ends_with("/containerbehaviorreports")).then_some(403)
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
        assert!(find(&calls, "POST", "/containerbehaviorreports").is_none());
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
