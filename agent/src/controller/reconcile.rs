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
use super::seccomp::SeccompProfiles;
use super::status;
use super::store::{ReportStore, StoredReport, WorkloadKey};
use crate::metrics::ControllerMetrics;
use crate::publish::{FOLD_FINALIZER, release_fold};

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

    /// Reconciles every workload of `batch`, counting failures by kind.
    pub async fn reconcile_all(&mut self, batch: Vec<WorkloadKey>) {
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
        return Ok(());
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
        let object = objects::archive(profile, &container, archive);
        let name = object.name_any();
        Api::<imprint_crd::report::ContainerBehaviorReport>::namespaced(
            context.client.clone(),
            &namespace,
        )
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|source| Error::Archive { name, source })?;
        let reports_api = Api::namespaced(context.client.clone(), &report.namespace);
        release_fold(
            &reports_api,
            &report.name,
            &report.finalizers,
            report.resource_version.as_deref(),
        )
        .await
        .map_err(|source| Error::Release {
            name: report.name.clone(),
            source,
        })?;
        context.metrics.folded_reports.inc();
        info!(namespace, report = %report.name, "folded the report of a deleted pod into the archive");
    }
    live.extend(archives.into_values());
    Ok(live)
}
