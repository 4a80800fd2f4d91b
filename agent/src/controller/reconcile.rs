//! Reconciling one workload: find or create its BehaviorProfile, fold the
//! reports of deleted pods into the workload's archive (then release
//! them), merge the rest, write the SeccompProfiles and the status.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imprint_crd::profile::{
    BehaviorProfile, BehaviorProfileStatus, NetworkPolicyStatus, Phase, ProfileCondition,
};
use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec, WorkloadRef};
use k8s_openapi::api::networking::v1::NetworkPolicySpec;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use super::completeness;
use super::error::Error;
use super::guard;
use super::leader::Leadership;
use super::merge;
use super::network_apply::{self, NetworkPolicies, Written};
use super::network_policy;
use super::network_view::NetworkView;
use super::objects::{self, Ownership, profile_name};
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
    /// What NetworkPolicies are derived from (`None`: none is).
    pub network: Option<NetworkView>,
    /// Where derived NetworkPolicies are applied once their profile is
    /// `Stable` (`None`: they are only proposed, in the status).
    pub network_policies: Option<NetworkPolicies>,
}

/// Condition of a profile some of whose object names are held by objects
/// not its own.
const NAME_CONFLICT: &str = "NameConflict";

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
    // A report covered by the profile was written against the profile as
    // its agent saw it, which the store may not have yet: the profile is
    // read from the API server then, so its base is never older.
    let covered = reports.iter().any(|r| r.covered);
    let existing = match existing {
        Some(profile) if !covered => Some(profile.clone()),
        _ => api.get_opt(&name).await.map_err(profile_error)?,
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
    if profile.spec.workload != *workload {
        // Only a name cut to fit (and given a hash) can meet another's.
        warn!(
            namespace,
            name, "the BehaviorProfile of this name is another workload's: left alone"
        );
        return Ok(());
    }

    let (sources, mut taken) = fold(context, &profile, &reports).await?;
    let mut guard = guard::Guard::of(&profile);
    let (merged, facts) = merge_one_by_one(&sources, &profile, guard.as_mut());
    drop(sources);
    let guarded = guard.map(guard::Guard::finish);
    let specs: Vec<&ContainerBehaviorReportSpec> = facts.iter().collect();
    context.metrics.merges.inc();
    context
        .metrics
        .skipped_entries
        .inc_by(merged.skipped as u64);
    let containers: Vec<String> = guarded
        .as_ref()
        .map_or(&merged.containers, |(containers, _)| containers)
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let seccomp_names = context.seccomp.names(&profile, &containers).await;
    let mut status = status::compute(
        &profile,
        merged,
        guarded,
        &specs,
        &seccomp_names,
        context.stability_window,
        Timestamp::now().as_second(),
    );
    if let Some(view) = &context.network {
        let proposal = propose_network_policy(view, namespace, workload, &mut status).await;
        if let (Some(policies), Some(spec)) = (context.network_policies.as_mut(), proposal) {
            apply_network_policy(policies, &profile, &spec, &mut status, &context.leadership).await;
        }
    }
    let applied = context
        .seccomp
        .apply(&profile, &status, &context.leadership)
        .await;
    if let Some(error) = applied.failure {
        status.conditions.push(ProfileCondition {
            type_: "SeccompProfilesWritten".into(),
            status: "False".into(),
            reason: "ApiError".into(),
            message: error,
        });
    }
    taken.extend(applied.taken);
    if !taken.is_empty() {
        let message = format!(
            "objects of these names exist and are not this profile's; imprint leaves them alone and writes nothing there: {}",
            taken.join(", ")
        );
        let told = profile
            .status
            .iter()
            .flat_map(|s| &s.conditions)
            .any(|c| c.type_ == NAME_CONFLICT && c.message == message);
        if !told {
            status::event(
                &context.recorder,
                &profile.object_ref(&()),
                EventType::Warning,
                status::reasons::NAME_TAKEN,
                &message,
            )
            .await;
        }
        status.conditions.push(ProfileCondition {
            type_: NAME_CONFLICT.into(),
            status: "True".into(),
            reason: "NotOurs".into(),
            message,
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

/// Puts the NetworkPolicy the workload's connections call for in its
/// status, or a condition saying why there is none; returns its spec.
async fn propose_network_policy(
    view: &NetworkView,
    namespace: &str,
    workload: &WorkloadRef,
    status: &mut BehaviorProfileStatus,
) -> Option<NetworkPolicySpec> {
    let endpoints = network_policy::distinct(
        status
            .containers
            .iter()
            .flat_map(|c| c.network.iter().cloned()),
    );
    let (selector, facts) = view.facts(namespace, workload, &endpoints).await;
    let Some(selector) = selector else {
        status.conditions.push(network_condition(
            "SelectorUnknown",
            format!(
                "the pod selector of {} {} cannot be read (gone, or it selects by expressions): no NetworkPolicy is derived",
                workload.kind, workload.name
            ),
        ));
        return None;
    };
    let derived = network_policy::derive(namespace, &selector, &endpoints, &facts);
    if !derived.unobserved_listeners.is_empty() {
        status.conditions.push(network_condition(
            "UnobservedListeners",
            format!(
                "no connection was seen to these listening ports, so the NetworkPolicy would refuse them: {}",
                derived.unobserved_listeners.join(", ")
            ),
        ));
    }
    let mut notes = derived.notes;
    if status
        .conditions
        .iter()
        .any(|c| c.type_ == completeness::START_NOT_OBSERVED && c.status == "True")
    {
        notes.push(format!(
            "some containers were not recorded from their start (condition {}): connections they made before are not in this policy, and it is not applied",
            completeness::START_NOT_OBSERVED
        ));
    }
    status.network_policy = Some(NetworkPolicyStatus {
        state: network_apply::states::PROPOSED.into(),
        name: None,
        ingress_rules: derived.spec.ingress.as_ref().map_or(0, Vec::len) as u32,
        egress_rules: derived.spec.egress.as_ref().map_or(0, Vec::len) as u32,
        unobserved_listeners: derived.unobserved_listeners,
        notes,
        spec: serde_json::to_value(&derived.spec).unwrap_or_default(),
    });
    Some(derived.spec)
}

/// Applies the proposed NetworkPolicy once the profile is `Stable` and
/// nothing the policy would refuse went unobserved; otherwise says what is
/// in force (an earlier applied policy, or none) and why
/// ([`network_apply::decide`]).
async fn apply_network_policy(
    policies: &mut NetworkPolicies,
    profile: &BehaviorProfile,
    spec: &NetworkPolicySpec,
    status: &mut BehaviorProfileStatus,
    leadership: &Leadership,
) {
    let stable = status.phase == Phase::Stable;
    let Some(proposal) = status.network_policy.as_mut() else {
        return;
    };
    let unobserved = !proposal.unobserved_listeners.is_empty();
    let in_force = policies
        .current(profile)
        .map(|current| network_apply::same_policy(&current, spec));
    let decision = network_apply::decide(stable, unobserved, in_force);
    let name = network_apply::policy_name(profile);
    proposal.state = decision.state.into();
    if in_force.is_some() {
        proposal.name = Some(name.clone());
    }
    let message = match decision.reason {
        Some(reason @ network_apply::reasons::APPLIED_IS_EARLIER) => Some((
            reason,
            format!(
                "the NetworkPolicy {name} in force is the one of an earlier Stable phase; this proposal replaces it once the profile is Stable{}",
                if unobserved { " and every listener was seen used" } else { "" }
            ),
        )),
        Some(reason) => Some((
            reason,
            "not applied while a listening port had no connection seen (condition UnobservedListeners): the policy would refuse it; accept or apply by hand".to_string(),
        )),
        None => None,
    };
    if let Some((reason, message)) = message {
        status.conditions.push(network_condition(reason, message));
    }
    if !decision.apply {
        return;
    }
    match policies.apply(profile, spec, leadership).await {
        Written::Applied(name) => {
            proposal.state = network_apply::states::APPLIED.into();
            proposal.name = Some(name);
        }
        Written::Taken(name) => {
            proposal.state = network_apply::states::HELD.into();
            status.conditions.push(network_condition(
                "NameTaken",
                format!(
                    "a NetworkPolicy named {name} exists and is not imprint's: left alone, nothing applied"
                ),
            ));
        }
        Written::Failed(error) => status.conditions.push(network_condition(
            "ApiError",
            format!("not applied (retried): {error}"),
        )),
    }
}

/// A `NetworkPolicy` condition (status False: something is missing).
fn network_condition(reason: &str, message: String) -> ProfileCondition {
    ProfileCondition {
        type_: NETWORK_POLICY.into(),
        status: "False".into(),
        reason: reason.into(),
        message,
    }
}

/// Condition about the workload's NetworkPolicy.
const NETWORK_POLICY: &str = "NetworkPolicy";

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
/// releases them; returns the specs to merge (live reports and archives)
/// and the archive names found taken by objects not this profile's (their
/// reports stay held, and are released unfolded at the deadline).
async fn fold(
    context: &Context,
    profile: &BehaviorProfile,
    reports: &[Arc<StoredReport>],
) -> Result<(Vec<Merging>, Vec<String>), Error> {
    let namespace = profile.namespace().unwrap_or_default();
    let mut live: Vec<Merging> = Vec::new();
    let mut archives: BTreeMap<String, Merging> = BTreeMap::new();
    // One archive write per container takes every report leaving it, then
    // each is released: a Deployment scaled down by 100 is 100 releases
    // and one write, not 100 writes of a growing archive.
    let mut by_container: BTreeMap<String, Vec<Arc<StoredReport>>> = BTreeMap::new();
    for report in reports {
        if report.archive {
            archives.insert(report.name.clone(), Merging::Stored(report.clone()));
        } else if report.deleting() {
            if !release::held(report) {
                continue;
            }
            if let Err(error) = report.spec() {
                warn!(%error, report = %report.name, "report kept unreadable; not folded");
                continue;
            }
            by_container
                .entry(report.container.clone())
                .or_default()
                .push(report.clone());
        } else {
            live.push(Merging::Stored(report.clone()));
        }
    }
    let mut taken = Vec::new();
    for (container, leaving) in by_container {
        match write_archive(context, profile, &container, &leaving).await? {
            Archived::Written(name, spec) => {
                archives.insert(name, Merging::Written(spec));
            }
            Archived::Taken(name) => {
                warn!(namespace, archive = %name, "an object of the archive's name is not this profile's: left alone, the reports stay held");
                taken.push(name);
                continue;
            }
            Archived::NamespaceTerminating => {
                for report in &leaving {
                    release::release_unfolded(context, report, Unfolded::NamespaceTerminating)
                        .await?;
                }
                continue;
            }
        }
        for report in &leaving {
            release::release(context, report).await?;
            context.metrics.folded_reports.inc();
            info!(namespace, report = %report.name, "folded the report of a deleted pod into the archive");
        }
    }
    live.extend(archives.into_values());
    Ok((live, taken))
}

/// A report to merge: as the store keeps it (parsed when its turn comes,
/// then dropped), or an archive as just written.
enum Merging {
    /// A live report or an archive, from the store.
    Stored(Arc<StoredReport>),
    /// An archive as written by this reconcile's fold.
    Written(Box<ContainerBehaviorReportSpec>),
}

/// Merges `sources` one at a time (each parsed, added, dropped) with what
/// `profile` holds for the reports it covers: the merged workload and each
/// report's facts (subject, window, stats).
fn merge_one_by_one(
    sources: &[Merging],
    profile: &BehaviorProfile,
    mut guard: Option<&mut guard::Guard>,
) -> (merge::MergedWorkload, Vec<ContainerBehaviorReportSpec>) {
    let mut merging = merge::WorkloadMerge::new(&profile.spec.overrides);
    if let (Some(uid), Some(status)) = (&profile.metadata.uid, &profile.status) {
        merging = merging.covered_by(uid, &status.containers);
    }
    let mut add = |spec: &ContainerBehaviorReportSpec| {
        merging.add(spec);
        if let Some(guard) = guard.as_deref_mut() {
            guard.observe(spec);
        }
    };
    for source in sources {
        match source {
            Merging::Written(spec) => add(spec),
            Merging::Stored(report) => match report.spec() {
                Ok(spec) => add(&spec),
                Err(error) => {
                    warn!(%error, report = %report.name, "report kept unreadable; skipped");
                }
            },
        }
    }
    merging.finish(None)
}

/// What became of a fold into an archive.
enum Archived {
    /// The archive as written, and its name.
    Written(String, Box<ContainerBehaviorReportSpec>),
    /// An object of the archive's name is not this profile's.
    Taken(String),
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
    folded: &[Arc<StoredReport>],
) -> Result<Archived, Error> {
    let namespace = profile.namespace().unwrap_or_default();
    let api = Api::<ContainerBehaviorReport>::namespaced(context.client.clone(), &namespace);
    let name = objects::archive_name(&profile.name_any(), container);
    let archive_error = |name: &str, source| Error::Archive {
        name: name.to_string(),
        source,
    };
    let ours = |archive: &ContainerBehaviorReport| {
        archive
            .labels()
            .get(crate::publish::labels::ARCHIVE)
            .is_some_and(|v| v == "true")
            && objects::ownership(&archive.metadata, profile, container) != Ownership::NotOurs
    };
    // An archive an earlier release named is adopted under its name.
    let mut first = api
        .get_opt(&name)
        .await
        .map_err(|e| archive_error(&name, e))?;
    let mut name = name;
    if first.is_none() {
        let earlier = objects::legacy::archive_name(&profile.name_any(), container);
        if let Some(archive) = api
            .get_opt(&earlier)
            .await
            .map_err(|e| archive_error(&earlier, e))?
            && ours(&archive)
        {
            info!(namespace, archive = %earlier, "the archive of an earlier release adopted under its name");
            name = earlier;
            first = Some(archive);
        }
    }
    let mut conflict = None;
    for attempt in 0..ARCHIVE_ATTEMPTS {
        // The first attempt uses the read above (present or not).
        let current = if attempt == 0 {
            first.take()
        } else {
            api.get_opt(&name)
                .await
                .map_err(|e| archive_error(&name, e))?
        };
        if current.as_ref().is_some_and(|archive| !ours(archive)) {
            return Ok(Archived::Taken(name));
        }
        let mut spec = match &current {
            Some(archive) => archive.spec.clone(),
            None => {
                let mut spec = ContainerBehaviorReportSpec::default();
                spec.subject.namespace = Some(namespace.clone());
                spec.subject.container = Some(container.to_string());
                spec.subject.workload = Some(profile.spec.workload.clone());
                spec
            }
        };
        // One report parsed at a time (checked readable before).
        for report in folded {
            if let Ok(mut folded) = report.spec() {
                if spec.syscalls.arch.is_empty() {
                    spec.syscalls.arch = folded.syscalls.arch.clone();
                }
                // Covered by a profile that is gone (another uid): what it
                // held of the report went with it; the rest is kept, and
                // the archive is not tied to that profile for ever.
                if folded
                    .covered
                    .as_ref()
                    .is_some_and(|c| profile.metadata.uid.as_ref() != Some(&c.uid))
                {
                    warn!(namespace, report = %report.name, "folded a report covered by an earlier profile of this name: what only that profile held of it is not in the archive");
                    folded.covered = None;
                }
                spec.absorb(&folded);
            }
        }
        let mut object = objects::archive_named(&name, profile, container, &spec);
        context.leadership.ensure()?;
        let written = match current {
            Some(archive) => {
                object.metadata.resource_version = archive.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &object).await
            }
            None => api.create(&PostParams::default(), &object).await,
        };
        match written {
            Ok(written) => return Ok(Archived::Written(name, Box::new(written.spec))),
            Err(error) if release::namespace_terminating(&error) => {
                return Ok(Archived::NamespaceTerminating);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                debug!(archive = %name, "another write came between: read again");
                conflict = Some(kube::Error::Api(status));
            }
            Err(error) => return Err(archive_error(&name, error)),
        }
    }
    Err(archive_error(
        &name,
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

    const REPORTS: &str = "/apis/imprint.dev/v1alpha1/namespaces/shop/containerbehaviorreports";
    const SECCOMP: &str = "/apis/security-profiles-operator.x-k8s.io/v1/seccompprofiles";

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

    fn context_recorder(client: Client) -> Recorder {
        Recorder::new(
            client,
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: None,
            },
        )
    }

    fn context(client: Client) -> Context {
        let gvk = GroupVersionKind::gvk(spo::GROUP, "v1", "SeccompProfile");
        Context {
            stability_window: Duration::from_secs(600),
            metrics: ControllerMetrics::default(),
            recorder: context_recorder(client.clone()),
            seccomp: SeccompProfiles::with_resource(
                client.clone(),
                SeccompApi::V1,
                ApiResource::from_gvk_with_plural(&gvk, "seccompprofiles"),
                Scope::Cluster,
            ),
            leadership: Leadership::default(),
            network: None,
            network_policies: None,
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
            objects::archive_name("deployment-web", "nginx")
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

        let seccomp_name = objects::seccomp_name("shop", &web(), "nginx");
        let (_, seccomp) =
            find(&calls, "POST", "/seccompprofiles").expect("the SeccompProfile is created");
        assert_eq!(seccomp.body["metadata"]["name"], seccomp_name.as_str());
        assert_eq!(
            seccomp.body["metadata"]["labels"]["imprint.dev/profile-uid"],
            "uid-profile"
        );
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
        assert_eq!(container["seccompProfile"], seccomp_name.as_str());
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
        let archive_path = format!(
            "{REPORTS}/{}",
            objects::archive_name("deployment-web", "nginx")
        );
        let objects = mock_api::Objects::default();
        let mut earlier = ContainerBehaviorReportSpec::default();
        earlier.syscalls.arch = "x86_64".into();
        earlier.syscalls.names = vec!["clone".into()];
        let mut stored = objects::archive(&profile(), "nginx", &earlier);
        stored.metadata.resource_version = Some("5".into());
        objects
            .lock()
            .unwrap()
            .insert(archive_path.clone(), serde_json::to_value(&stored).unwrap());
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
        let archive = objects.lock().unwrap()[&archive_path].clone();
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

    /// Reconciles `profile()` with `reports` against an API server that
    /// holds `store`: the context, and every call made.
    async fn reconcile_against(
        store: &mock_api::Objects,
        reports: Vec<Arc<StoredReport>>,
    ) -> (Context, Vec<Call>) {
        let (client, calls) =
            mock_api::client_with(profile(), Box::new(|_, _| None), store.clone());
        let mut context = context(client);
        let key = ("shop".to_string(), web());
        reconcile(&mut context, &key, Some(&profile()), reports)
            .await
            .unwrap();
        let calls = calls.lock().unwrap().clone();
        (context, calls)
    }

    fn seccomp_object(name: &str, labels: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "security-profiles-operator.x-k8s.io/v1",
            "kind": "SeccompProfile",
            "metadata": {"name": name, "labels": labels, "resourceVersion": "3", "uid": format!("uid-{name}")},
            "spec": {"defaultAction": "SCMP_ACT_LOG"},
        })
    }

    fn reasons_of(calls: &[Call]) -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.method == "POST" && c.path.ends_with("/events"))
            .filter_map(|c| c.body["reason"].as_str().map(str::to_string))
            .collect()
    }

    /// Another namespace's workload (or a hand-made object) holds the
    /// SeccompProfile name: it is never written over; the profile says so
    /// in a condition and a Warning Event.
    #[tokio::test]
    async fn an_object_of_the_name_that_is_not_ours_is_left_alone() {
        let name = objects::seccomp_name("shop", &web(), "nginx");
        let store = mock_api::Objects::default();
        let theirs = serde_json::json!({
            "app.kubernetes.io/managed-by": "imprint",
            "imprint.dev/profile-namespace": "other",
            "imprint.dev/profile-name": "deployment-web",
            "imprint.dev/profile-uid": "uid-other",
            "imprint.dev/container": "nginx",
        });
        store
            .lock()
            .unwrap()
            .insert(format!("{SECCOMP}/{name}"), seccomp_object(&name, theirs));
        let (mut context, calls) =
            reconcile_against(&store, vec![report("web-1", &["read"], false)]).await;
        assert!(
            !calls
                .iter()
                .any(|c| c.path.contains("/seccompprofiles") && c.method != "GET"),
            "{calls:?}"
        );
        assert_eq!(
            store.lock().unwrap()[&format!("{SECCOMP}/{name}")]["metadata"]["labels"]["imprint.dev/profile-uid"],
            "uid-other"
        );
        let (_, status) = find(&calls, "PATCH", "/status").expect("the status is written");
        let conditions = status.body["status"]["conditions"].as_array().unwrap();
        let conflict = conditions
            .iter()
            .find(|c| c["type"] == "NameConflict")
            .expect("a NameConflict condition");
        assert!(conflict["message"].as_str().unwrap().contains(&name));
        assert!(reasons_of(&calls).contains(&"NameTaken".to_string()));
        // Told once: the next reconcile, with the condition already set,
        // sends no second Event.
        let mut told = profile();
        told.status = Some(serde_json::from_value(status.body["status"].clone()).unwrap());
        let before = reasons_of(&calls).len();
        let (client, calls) = mock_api::client_with(told.clone(), Box::new(|_, _| None), store);
        context.client = client.clone();
        context.recorder = context_recorder(client);
        reconcile(
            &mut context,
            &("shop".to_string(), web()),
            Some(&told),
            vec![report("web-1", &["read"], false)],
        )
        .await
        .unwrap();
        let again = reasons_of(&calls.lock().unwrap());
        assert!(
            !again.contains(&"NameTaken".to_string()),
            "{again:?} after {before}"
        );
    }

    /// An upgrade: the SeccompProfile an earlier release wrote under
    /// `<namespace>-<workload>-<container>` is adopted under that name
    /// (ProfileBindings name it), written at the version read, and labelled
    /// with the profile's UID; no second profile is made beside it.
    #[tokio::test]
    async fn a_seccomp_profile_of_an_earlier_release_is_adopted() {
        let store = mock_api::Objects::default();
        let earlier_labels = serde_json::json!({
            "app.kubernetes.io/managed-by": "imprint",
            "imprint.dev/profile-namespace": "shop",
            "imprint.dev/profile-name": "deployment-web",
            "imprint.dev/container": "nginx",
        });
        store.lock().unwrap().insert(
            format!("{SECCOMP}/shop-web-nginx"),
            seccomp_object("shop-web-nginx", earlier_labels),
        );
        let (_, calls) = reconcile_against(&store, vec![report("web-1", &["read"], false)]).await;
        let (_, adopted) = find(&calls, "PATCH", "/seccompprofiles/shop-web-nginx")
            .expect("the earlier profile is written");
        assert_eq!(adopted.body["metadata"]["resourceVersion"], "3");
        assert_eq!(
            adopted.body["metadata"]["labels"]["imprint.dev/profile-uid"],
            "uid-profile"
        );
        assert!(
            find(&calls, "POST", "/seccompprofiles").is_none(),
            "{calls:?}"
        );
        let (_, status) = find(&calls, "PATCH", "/status").unwrap();
        assert_eq!(
            status.body["status"]["containers"][0]["seccompProfile"],
            "shop-web-nginx"
        );
    }

    /// An upgrade: the archive an earlier release wrote
    /// (`<profile>-<container>-archive`, owned by the profile) keeps what
    /// was learnt and takes the next fold; no second archive is made.
    #[tokio::test]
    async fn an_archive_of_an_earlier_release_is_adopted() {
        let store = mock_api::Objects::default();
        let mut learnt = ContainerBehaviorReportSpec::default();
        learnt.syscalls.arch = "x86_64".into();
        learnt.syscalls.names = vec!["clone".into()];
        let mut earlier =
            objects::archive_named("deployment-web-nginx-archive", &profile(), "nginx", &learnt);
        let labels = earlier.metadata.labels.as_mut().unwrap();
        labels.retain(|k, _| {
            k.starts_with("imprint.dev/workload")
                || k == "imprint.dev/container"
                || k == "imprint.dev/archive"
        });
        earlier.metadata.resource_version = Some("4".into());
        let path = format!("{REPORTS}/deployment-web-nginx-archive");
        store
            .lock()
            .unwrap()
            .insert(path.clone(), serde_json::to_value(&earlier).unwrap());
        let (_, calls) =
            reconcile_against(&store, vec![report("web-2", &["personality"], true)]).await;
        assert!(
            find(&calls, "POST", "/containerbehaviorreports").is_none(),
            "{calls:?}"
        );
        let archive = store.lock().unwrap()[&path].clone();
        assert_eq!(
            names(&archive["spec"]["syscalls"]["names"]),
            ["clone", "personality"]
        );
        assert_eq!(
            archive["metadata"]["labels"]["imprint.dev/profile-uid"],
            "uid-profile"
        );
        assert!(find(&calls, "PATCH", "/containerbehaviorreports/web-2-nginx").is_some());
    }

    /// A report made by hand under the archive's name is never written
    /// over: the deleted pod's report stays held (until the deadline).
    #[tokio::test]
    async fn an_archive_name_taken_by_another_object_is_left_alone() {
        let store = mock_api::Objects::default();
        let name = objects::archive_name("deployment-web", "nginx");
        let mut forged =
            ContainerBehaviorReport::new(&name, ContainerBehaviorReportSpec::default());
        forged.metadata.namespace = Some("shop".into());
        forged.metadata.resource_version = Some("2".into());
        let path = format!("{REPORTS}/{name}");
        store
            .lock()
            .unwrap()
            .insert(path.clone(), serde_json::to_value(&forged).unwrap());
        let (_, calls) =
            reconcile_against(&store, vec![report("web-2", &["personality"], true)]).await;
        assert!(
            !calls
                .iter()
                .any(|c| c.path.contains("/containerbehaviorreports") && c.method != "GET"),
            "nothing written, nothing released: {calls:?}"
        );
        assert!(reasons_of(&calls).contains(&"NameTaken".to_string()));
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
