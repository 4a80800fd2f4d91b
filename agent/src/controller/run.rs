//! `imprint controller`: watches every ContainerBehaviorReport, merges the
//! reports of each workload into its BehaviorProfile, and writes one
//! security-profiles-operator SeccompProfile per container.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use imprint_crd::profile::{BehaviorProfile, BehaviorProfileSpec, BehaviorProfileStatus, Phase};
use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec, WorkloadRef};
use imprint_crd::spo::{self, SeccompProfileSpec, SyscallRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::discovery::Scope;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::leader::LeaderLease;
use super::merge::{self, MergedWorkload};
use super::store::{ReportStore, StoredReport, WorkloadKey};
use crate::metrics::{self, ControllerMetrics};
use crate::names::Arch;
use crate::publish::{FOLD_FINALIZER, label_value, labels, object_name};
use crate::record::{AbortOnDrop, Stop};

/// Field manager of the controller's server-side applies.
pub const FIELD_MANAGER: &str = "imprint-controller";

/// Label marking objects the controller made.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "imprint");
/// Label naming the BehaviorProfile a SeccompProfile comes from: namespace.
pub const PROFILE_NAMESPACE: &str = "imprint.dev/profile-namespace";
/// Label naming the BehaviorProfile a SeccompProfile comes from: name.
pub const PROFILE_NAME: &str = "imprint.dev/profile-name";

/// Which security-profiles-operator API the SeccompProfiles use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SeccompApi {
    /// `v1`, cluster-scoped (security-profiles-operator >= 0.9).
    V1,
    /// `v1beta1`, namespaced (older releases).
    V1beta1,
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Default time without anything new before a profile is Stable.
    pub stability_window: Duration,
    /// SeccompProfile API version.
    pub seccomp_api: SeccompApi,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Lease (namespace, name) for leader election; `None`: no election.
    pub lease: Option<(String, String)>,
    /// This replica's identity in the Lease.
    pub identity: String,
    /// How often every profile is looked at again (phase changes with time).
    pub resync: Duration,
}

/// Name of the BehaviorProfile of a workload.
pub fn profile_name(workload: &WorkloadRef) -> String {
    object_name(
        &format!("{}-{}", workload.kind.to_ascii_lowercase(), workload.name),
        253,
    )
}

/// Name of the SeccompProfile of one container of a workload.
pub fn seccomp_name(namespace: &str, workload: &WorkloadRef, container: &str) -> String {
    object_name(&format!("{namespace}-{}-{container}", workload.name), 253)
}

/// Name of the report that keeps the folded reports of deleted pods.
pub fn archive_name(profile: &str, container: &str) -> String {
    object_name(&format!("{profile}-{container}-archive"), 253)
}

/// Runs the controller until SIGINT/SIGTERM or until it loses the lease.
pub async fn run(options: ControllerOptions) -> Result<()> {
    let mut stop = Stop::listen()?;
    let client = Client::try_default()
        .await
        .context("no Kubernetes API configuration (in-cluster service account or KUBECONFIG)")?;
    let controller_metrics = ControllerMetrics::default();
    let mut registry = Registry::default();
    controller_metrics.register(&mut registry);
    let (ready, _server) = metrics::start(options.listen, registry);

    // Ready means running: a standby replica waiting for the Lease is
    // ready too (a rollout of several replicas needs them all ready);
    // `imprint_controller_leader` says which one acts.
    ready.store(true, Ordering::Relaxed);
    let (lost_tx, mut lost) = mpsc::channel::<()>(1);
    let lease = options.lease.as_ref().map(|(namespace, name)| {
        Arc::new(LeaderLease::new(
            client.clone(),
            namespace,
            name,
            &options.identity,
            Duration::from_secs(15),
        ))
    });
    let _renewer = match &lease {
        Some(lease) => {
            tokio::select! {
                acquired = lease.acquire() => acquired?,
                _ = stop.requested() => return Ok(()),
            }
            let lease = lease.clone();
            Some(AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease.renew_every()).await;
                    match lease.renew().await {
                        Ok(true) => {}
                        Ok(false) => {
                            let _ = lost_tx.send(()).await;
                            return;
                        }
                        Err(error) => warn!(%error, "lease not renewed (retrying)"),
                    }
                }
            })))
        }
        None => None,
    };

    let (keys_tx, mut keys) = mpsc::unbounded_channel::<WorkloadKey>();
    let (profiles, _profile_watch) =
        reflect::<BehaviorProfile, _>(Api::all(client.clone()), keys_tx, |p: &BehaviorProfile| {
            Some((p.namespace()?, p.spec.workload.clone()))
        });
    // Reports are many: kept compact (see `store`), fed by a watcher.
    let (report_events_tx, mut report_events) = mpsc::unbounded_channel();
    let report_api = Api::<ContainerBehaviorReport>::all(client.clone());
    let _report_watch = AbortOnDrop(tokio::spawn(async move {
        let stream = watcher(report_api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if report_events_tx.send(event).is_err() {
                        return;
                    }
                }
                Err(error) => debug!(%error, "report watch error (retrying)"),
            }
        }
    }));
    let mut reports = ReportStore::default();
    while !reports.is_ready() {
        tokio::select! {
            Some(event) = report_events.recv() => { reports.apply(event); }
            _ = stop.requested() => return Ok(()),
        }
    }
    profiles.wait_until_ready().await?;

    let mut controller = Controller {
        options: options.clone(),
        client: client.clone(),
        reports,
        profiles,
        metrics: controller_metrics,
        recorder: Recorder::new(
            client,
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some(options.identity.clone()),
            },
        ),
        applied_seccomp: HashMap::new(),
        seccomp_resource: None,
    };
    controller.metrics.leader.set(1);
    info!("controller running");

    let mut dirty: HashSet<WorkloadKey> = HashSet::new();
    let mut debounce = tokio::time::interval(Duration::from_millis(500));
    let mut resync = tokio::time::interval(options.resync);
    // A leader that could not renew the Lease in time (the API server away,
    // or only unreachable from here) pauses before any standby may take
    // over, and goes on once a renewal goes through.
    let mut acting = true;
    let mut may_act = |metrics: &ControllerMetrics| {
        let held = lease.as_ref().is_none_or(|lease| lease.is_held());
        if held != acting {
            acting = held;
            metrics.leader.set(i64::from(held));
            if held {
                info!("the Lease is renewed again: acting");
            } else {
                warn!(
                    "the Lease was not renewed in time: paused until it is (another replica may take over)"
                );
            }
        }
        held
    };
    loop {
        tokio::select! {
            Some(key) = keys.recv() => { dirty.insert(key); }
            Some(event) = report_events.recv() => { dirty.extend(controller.reports.apply(event)); }
            _ = debounce.tick() => {
                if !dirty.is_empty() && may_act(&controller.metrics) {
                    let batch: Vec<_> = dirty.drain().collect();
                    controller.reconcile_all(batch).await;
                }
            }
            _ = resync.tick() => {
                dirty.extend(controller.all_keys());
                if may_act(&controller.metrics) {
                    controller.collect_orphans().await;
                }
            }
            _ = lost.recv() => {
                anyhow::bail!("lost the leader lease to another replica; exiting so that it alone acts");
            }
            _ = stop.requested() => break,
        }
    }
    ready.store(false, Ordering::Relaxed);
    controller.metrics.leader.set(0);
    drop(_renewer);
    if let Some(lease) = lease
        && let Err(error) = lease.release().await
    {
        warn!(%error, "lease not released (another replica takes over when it expires)");
    }
    Ok(())
}

/// A reflector store of every `K`, sending the workload key of each
/// object that changes (or goes) on `keys`.
fn reflect<K, F>(
    api: Api<K>,
    keys: mpsc::UnboundedSender<WorkloadKey>,
    key_of: F,
) -> (Store<K>, AbortOnDrop)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    F: Fn(&K) -> Option<WorkloadKey> + Send + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(object) => {
                    if let Some(key) = key_of(&object) {
                        let _ = keys.send(key);
                    }
                }
                Err(error) => debug!(%error, kind = %K::kind(&()), "watch error (retrying)"),
            }
        }
    });
    (reader, AbortOnDrop(task))
}

struct Controller {
    options: ControllerOptions,
    client: Client,
    reports: ReportStore,
    profiles: Store<BehaviorProfile>,
    metrics: ControllerMetrics,
    recorder: Recorder,
    /// SeccompProfile specs last applied, by name.
    applied_seccomp: HashMap<String, SeccompProfileSpec>,
    /// The SeccompProfile resource of the selected version, once discovered.
    seccomp_resource: Option<(ApiResource, Scope)>,
}

impl Controller {
    fn all_keys(&self) -> HashSet<WorkloadKey> {
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

    async fn reconcile_all(&mut self, batch: Vec<WorkloadKey>) {
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
            if let Err(error) = self.reconcile(&key, reports).await {
                self.metrics.reconcile_errors.inc();
                warn!(namespace = %key.0, workload = %key.1.name, error = %format!("{error:#}"), "reconcile failed (retried at the next resync)");
            }
            self.metrics
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
            self.metrics.set_profiles(phase, count);
        }
    }

    /// Brings one workload's BehaviorProfile and SeccompProfiles up to date.
    async fn reconcile(
        &mut self,
        key: &WorkloadKey,
        reports: Vec<Arc<StoredReport>>,
    ) -> Result<()> {
        let (namespace, workload) = key;
        let name = profile_name(workload);
        let api = Api::<BehaviorProfile>::namespaced(self.client.clone(), namespace);
        let existing = match self.profiles.get(&ObjectRef::new(&name).within(namespace)) {
            Some(profile) => Some((*profile).clone()),
            None => api.get_opt(&name).await?,
        };
        let profile = match existing {
            Some(profile) => profile,
            None if reports.is_empty() => return Ok(()),
            None => {
                let profile = BehaviorProfile {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(namespace.clone()),
                        labels: Some(
                            [
                                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                                (
                                    labels::WORKLOAD_KIND.to_string(),
                                    label_value(&workload.kind),
                                ),
                                (
                                    labels::WORKLOAD_NAME.to_string(),
                                    label_value(&workload.name),
                                ),
                            ]
                            .into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    spec: BehaviorProfileSpec {
                        workload: workload.clone(),
                        ..BehaviorProfileSpec::default()
                    },
                    status: None,
                };
                match api.create(&PostParams::default(), &profile).await {
                    Ok(created) => {
                        info!(namespace, name, "BehaviorProfile created");
                        created
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => api.get(&name).await?,
                    Err(error) => return Err(error.into()),
                }
            }
        };
        if profile.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }

        // Reports of deleted pods go into the archive first.
        let mut live: Vec<ContainerBehaviorReportSpec> = Vec::new();
        let mut archives: BTreeMap<String, ContainerBehaviorReportSpec> = BTreeMap::new();
        let mut leaving = Vec::new();
        for report in &reports {
            let spec = match report.spec() {
                Ok(spec) => spec,
                Err(error) => {
                    warn!(%error, report = %report.name, "report kept unreadable; skipped");
                    continue;
                }
            };
            if report.archive {
                archives.insert(report.container.clone(), spec);
            } else if report.deleting {
                leaving.push((report.clone(), spec));
            } else {
                live.push(spec);
            }
        }
        for (report, folded) in leaving {
            if !report.finalizers.iter().any(|f| f == FOLD_FINALIZER) {
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
            self.apply_archive(&profile, &container, archive).await?;
            self.release(&report).await?;
            self.metrics.folded_reports.inc();
            info!(namespace, report = %report.name, "folded the report of a deleted pod into the archive");
        }
        live.extend(archives.into_values());

        let specs: Vec<&ContainerBehaviorReportSpec> = live.iter().collect();
        let merged = merge::merge_workload(
            &specs,
            &profile.spec.overrides,
            &merge::writable_mounts(&specs),
        );
        self.metrics.merges.inc();
        self.metrics.skipped_entries.inc_by(merged.skipped as u64);
        let status = self.status(namespace, workload, &profile, merged, &specs);
        let seccomp_failed = self
            .apply_seccomp_profiles(namespace, workload, &profile, &status)
            .await;
        let mut status = status;
        if let Some(error) = seccomp_failed {
            status
                .conditions
                .push(imprint_crd::profile::ProfileCondition {
                    type_: "SeccompProfilesWritten".into(),
                    status: "False".into(),
                    reason: "ApiError".into(),
                    message: error,
                });
        }
        self.publish_status(&api, &profile, status).await
    }

    /// The new status: merged behaviour, phase, names, differences.
    fn status(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
        profile: &BehaviorProfile,
        merged: MergedWorkload,
        specs: &[&ContainerBehaviorReportSpec],
    ) -> BehaviorProfileStatus {
        let previous = profile.status.clone().unwrap_or_default();
        let mut containers = merged.containers;
        for container in &mut containers {
            let seccomp = seccomp_name(namespace, workload, &container.name);
            let current = specs
                .iter()
                .filter(|s| s.subject.container.as_deref() == Some(container.name.as_str()))
                .filter_map(|s| {
                    Some((
                        s.window.last_seen.clone(),
                        s.subject.security_context.as_ref()?,
                    ))
                })
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, c)| c.clone());
            container.difference = merge::difference(
                &container.security_context,
                current.as_ref(),
                Some(&seccomp),
            );
            container.seccomp_profile = Some(seccomp);
        }
        let changed = merge::behaviour_changed(&previous.containers, &containers);
        let window = profile
            .spec
            .stability_window
            .as_deref()
            .and_then(|w| humantime::parse_duration(w).ok())
            .unwrap_or(self.options.stability_window);
        let now = Timestamp::now();
        let last_change = previous
            .last_change
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(|t| t.as_second());
        let (phase, last) = merge::next_phase(
            changed,
            merged.drops > 0,
            last_change,
            now.as_second(),
            i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
        );
        BehaviorProfileStatus {
            phase,
            reports: merged.reports,
            replicas: merged.replicas,
            nodes: merged.nodes,
            last_change: Timestamp::from_second(last).ok().map(|t| t.to_string()),
            containers,
            conditions: merged.conditions,
        }
    }

    /// Writes the status when it changed, and tells what changed in Events.
    async fn publish_status(
        &self,
        api: &Api<BehaviorProfile>,
        profile: &BehaviorProfile,
        status: BehaviorProfileStatus,
    ) -> Result<()> {
        let previous = profile.status.clone();
        if previous.as_ref() == Some(&status) {
            return Ok(());
        }
        let name = profile.name_any();
        let patch = serde_json::json!({
            "apiVersion": BehaviorProfile::api_version(&()),
            "kind": BehaviorProfile::kind(&()),
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        let previous = previous.unwrap_or_default();
        let reference = profile.object_ref(&());
        if merge::behaviour_changed(&previous.containers, &status.containers) {
            self.event(
                &reference,
                EventType::Normal,
                "BehaviourChanged",
                &change_note(&previous, &status),
            )
            .await;
        }
        if previous.phase != status.phase {
            let reason = match status.phase {
                Phase::Stable => "Stable",
                Phase::Learning => "Learning",
            };
            self.event(
                &reference,
                EventType::Normal,
                reason,
                &format!("profile is now {reason}"),
            )
            .await;
        }
        let skipped = |s: &BehaviorProfileStatus| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "SkippedEntries")
                .map(|c| c.message.clone())
        };
        if let Some(message) = skipped(&status)
            && skipped(&previous).as_ref() != Some(&message)
        {
            self.event(&reference, EventType::Warning, "SkippedEntries", &message)
                .await;
        }
        Ok(())
    }

    async fn event(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let event = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            debug!(%error, "event not recorded");
        }
    }

    /// Where SeccompProfiles of the selected version live: discovered once
    /// (SPO's v1 is cluster-scoped; its v1beta1 is namespaced in SPO <= 0.10
    /// and cluster-scoped in later releases, which still serve it).
    async fn seccomp_api(&mut self) -> Result<(ApiResource, Scope), String> {
        if let Some(found) = &self.seccomp_resource {
            return Ok(found.clone());
        }
        let version = match self.options.seccomp_api {
            SeccompApi::V1 => "v1",
            SeccompApi::V1beta1 => "v1beta1",
        };
        let gvk = GroupVersionKind::gvk(spo::GROUP, version, "SeccompProfile");
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((resource, capabilities)) => {
                info!(version, scope = ?capabilities.scope, "writing security-profiles-operator SeccompProfiles");
                let found = (resource, capabilities.scope);
                self.seccomp_resource = Some(found.clone());
                Ok(found)
            }
            Err(error) => Err(format!(
                "SeccompProfile {version} is not served ({error}): is security-profiles-operator's CRD installed?"
            )),
        }
    }

    /// Applies one SeccompProfile per container; the error text when any failed.
    async fn apply_seccomp_profiles(
        &mut self,
        namespace: &str,
        workload: &WorkloadRef,
        profile: &BehaviorProfile,
        status: &BehaviorProfileStatus,
    ) -> Option<String> {
        let (resource, scope) = match self.seccomp_api().await {
            Ok(found) => found,
            Err(error) => {
                warn!(%error, "SeccompProfiles not written");
                return Some(error);
            }
        };
        let mut failure = None;
        for container in &status.containers {
            let Some(name) = &container.seccomp_profile else {
                continue;
            };
            let spec = seccomp_spec(&container.architectures, &container.syscalls);
            if self.applied_seccomp.get(name) == Some(&spec) {
                continue;
            }
            let labels: BTreeMap<String, String> = [
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                (PROFILE_NAMESPACE.to_string(), label_value(namespace)),
                (PROFILE_NAME.to_string(), label_value(&profile.name_any())),
                (
                    labels::WORKLOAD_KIND.to_string(),
                    label_value(&workload.kind),
                ),
                (
                    labels::WORKLOAD_NAME.to_string(),
                    label_value(&workload.name),
                ),
                (labels::CONTAINER.to_string(), label_value(&container.name)),
            ]
            .into();
            let mut metadata = serde_json::json!({ "name": name, "labels": labels });
            let api: Api<DynamicObject> = match scope {
                Scope::Cluster => Api::all_with(self.client.clone(), &resource),
                Scope::Namespaced => {
                    metadata["namespace"] = namespace.into();
                    metadata["ownerReferences"] = serde_json::json!([owner(profile)]);
                    Api::namespaced_with(self.client.clone(), namespace, &resource)
                }
            };
            let object = serde_json::json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": metadata,
                "spec": spec,
            });
            let result = api
                .patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await;
            match result {
                Ok(_) => {
                    debug!(name, "SeccompProfile written");
                    self.applied_seccomp.insert(name.clone(), spec);
                }
                Err(error) => {
                    warn!(%error, name, "SeccompProfile not written");
                    failure = Some(format!("SeccompProfile {name}: {error}"));
                }
            }
        }
        failure
    }

    /// Writes the archive report of one container of a workload.
    async fn apply_archive(
        &self,
        profile: &BehaviorProfile,
        container: &str,
        spec: &ContainerBehaviorReportSpec,
    ) -> Result<()> {
        let name = archive_name(&profile.name_any(), container);
        let namespace = profile.namespace().unwrap_or_default();
        let workload = &profile.spec.workload;
        let mut report = ContainerBehaviorReport::new(&name, spec.clone());
        report.metadata = ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(
                [
                    (labels::ARCHIVE.to_string(), "true".to_string()),
                    (
                        labels::WORKLOAD_KIND.to_string(),
                        label_value(&workload.kind),
                    ),
                    (
                        labels::WORKLOAD_NAME.to_string(),
                        label_value(&workload.name),
                    ),
                    (labels::CONTAINER.to_string(), label_value(container)),
                ]
                .into(),
            ),
            owner_references: Some(vec![owner(profile)]),
            ..ObjectMeta::default()
        };
        let mut bounded = report.spec.clone();
        crate::publish::bound(&mut bounded, crate::publish::MAX_REPORT_BYTES);
        report.spec = bounded;
        Api::<ContainerBehaviorReport>::namespaced(self.client.clone(), &namespace)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&report),
            )
            .await
            .with_context(|| format!("writing archive {name}"))?;
        Ok(())
    }

    /// Removes the fold finalizer from a report that was folded.
    async fn release(&self, report: &StoredReport) -> Result<()> {
        let api =
            Api::<ContainerBehaviorReport>::namespaced(self.client.clone(), &report.namespace);
        crate::publish::release_fold(
            &api,
            &report.name,
            &report.finalizers,
            report.resource_version.as_deref(),
        )
        .await?;
        Ok(())
    }

    /// Deletes SeccompProfiles (v1, cluster-scoped) whose BehaviorProfile
    /// is gone: a cluster-scoped object cannot be owned by a namespaced one.
    async fn collect_orphans(&mut self) {
        let Some((resource, Scope::Cluster)) = self.seccomp_resource.clone() else {
            return;
        };
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        let Ok(list) = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
        else {
            return;
        };
        for object in list.items {
            let labels = object.metadata.labels.clone().unwrap_or_default();
            let (Some(namespace), Some(profile)) =
                (labels.get(PROFILE_NAMESPACE), labels.get(PROFILE_NAME))
            else {
                continue;
            };
            if self
                .profiles
                .get(&ObjectRef::new(profile).within(namespace))
                .is_none()
                && Api::<BehaviorProfile>::namespaced(self.client.clone(), namespace)
                    .get_opt(profile)
                    .await
                    .is_ok_and(|p| p.is_none())
            {
                let name = object.name_any();
                info!(
                    name,
                    "deleting the SeccompProfile of a deleted BehaviorProfile"
                );
                self.applied_seccomp.remove(&name);
                if let Err(error) = api.delete(&name, &DeleteParams::default()).await {
                    debug!(%error, name, "orphan not deleted");
                }
            }
        }
    }
}

/// The BehaviorProfile as owner (archives and namespaced SeccompProfiles
/// go when it goes).
fn owner(profile: &BehaviorProfile) -> OwnerReference {
    OwnerReference {
        api_version: BehaviorProfile::api_version(&()).into_owned(),
        kind: BehaviorProfile::kind(&()).into_owned(),
        name: profile.name_any(),
        uid: profile.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The SeccompProfile spec of one container: deny by default (EPERM),
/// allow every syscall in the profile.
pub fn seccomp_spec(architectures: &[String], syscalls: &[String]) -> SeccompProfileSpec {
    SeccompProfileSpec {
        default_action: "SCMP_ACT_ERRNO".into(),
        architectures: architectures
            .iter()
            .filter_map(|a| Arch::from_kernel_name(a))
            .map(|a| a.seccomp_name().to_string())
            .collect(),
        syscalls: if syscalls.is_empty() {
            Vec::new()
        } else {
            vec![SyscallRule {
                action: "SCMP_ACT_ALLOW".into(),
                names: syscalls.to_vec(),
                errno_ret: None,
            }]
        },
        base_profile_name: None,
    }
}

/// What changed between two statuses, in a few words per container.
fn change_note(before: &BehaviorProfileStatus, after: &BehaviorProfileStatus) -> String {
    let mut parts = Vec::new();
    for container in &after.containers {
        let old = before.containers.iter().find(|c| c.name == container.name);
        let new_of = |now: &[String], then: Option<&[String]>| {
            now.iter()
                .filter(|s| then.is_none_or(|t| !t.contains(s)))
                .cloned()
                .collect::<Vec<_>>()
        };
        let syscalls = new_of(&container.syscalls, old.map(|c| c.syscalls.as_slice()));
        let caps = new_of(
            &container.capabilities,
            old.map(|c| c.capabilities.as_slice()),
        );
        let execs = new_of(
            &container.executables,
            old.map(|c| c.executables.as_slice()),
        );
        let mut part = format!("{}:", container.name);
        if !syscalls.is_empty() {
            part.push_str(&format!(
                " +{} syscalls ({})",
                syscalls.len(),
                syscalls
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !caps.is_empty() {
            part.push_str(&format!(" +capabilities {}", caps.join(", ")));
        }
        if !execs.is_empty() {
            part.push_str(&format!(" +{} executables", execs.len()));
        }
        if part.ends_with(':') {
            part.push_str(" files or network changed");
        }
        parts.push(part);
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_shapes() {
        let web = WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        };
        assert_eq!(profile_name(&web), "deployment-web");
        assert_eq!(seccomp_name("shop", &web, "nginx"), "shop-web-nginx");
        assert_eq!(
            archive_name("deployment-web", "nginx"),
            "deployment-web-nginx-archive"
        );
        let long = WorkloadRef {
            kind: "Deployment".into(),
            name: "x".repeat(300),
        };
        assert!(profile_name(&long).len() <= 253);
    }

    #[test]
    fn seccomp_specs_deny_by_default_and_allow_what_was_seen() {
        let spec = seccomp_spec(&["x86_64".into()], &["read".into(), "write".into()]);
        assert_eq!(spec.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(spec.architectures, ["SCMP_ARCH_X86_64"]);
        assert_eq!(spec.syscalls[0].names, ["read", "write"]);
        assert!(seccomp_spec(&[], &[]).syscalls.is_empty());
    }
}
