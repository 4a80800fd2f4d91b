//! A BehaviorProfile's status: computed from the merged behavior (phase,
//! names, differences from the running securityContext), written when it
//! changed, and told in Events (BehaviorChanged, Stable, Learning,
//! SkippedEntries).

use std::collections::BTreeMap;
use std::time::Duration;

use imprint_crd::profile::{
    BehaviorProfile, BehaviorProfileStatus, ContainerProfile, Phase, ProfileCondition,
};
use imprint_crd::report::ContainerBehaviorReportSpec;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use tracing::debug;

use super::completeness;
use super::guard;
use super::merge::{self, MergedWorkload};
use super::objects::{FIELD_MANAGER, seccomp_name};

/// Event reasons, as users see them.
pub mod reasons {
    /// What a workload does changed.
    pub const BEHAVIOR_CHANGED: &str = "BehaviorChanged";
    /// The profile went Stable.
    pub const STABLE: &str = "Stable";
    /// The profile went back to Learning.
    pub const LEARNING: &str = "Learning";
    /// Report entries were skipped as invalid.
    pub const SKIPPED_ENTRIES: &str = "SkippedEntries";
    /// A deleted report was released without being folded.
    pub const RELEASED_UNFOLDED: &str = "ReleasedUnfolded";
    /// An object of a name the profile needs is not imprint's (for this
    /// profile): left alone.
    pub const NAME_TAKEN: &str = "NameTaken";
}

/// The new status of `profile`: merged behavior, phase, names (each
/// container's SeccompProfile from `seccomp_names`, else the injective
/// name), differences; `now` in seconds since the epoch.
pub fn compute(
    profile: &BehaviorProfile,
    merged: MergedWorkload,
    guarded: Option<(Vec<ContainerProfile>, u64)>,
    specs: &[&ContainerBehaviorReportSpec],
    seccomp_names: &BTreeMap<String, String>,
    default_window: Duration,
    now: i64,
) -> BehaviorProfileStatus {
    let namespace = profile.namespace().unwrap_or_default();
    let workload = &profile.spec.workload;
    let previous = profile.status.clone().unwrap_or_default();
    let already_guarding = guarded.is_some();
    let (mut containers, anomalies) = match guarded {
        Some((containers, anomalies)) => (containers, Some(anomalies)),
        None => (merged.containers, None),
    };
    for container in &mut containers {
        let seccomp = seccomp_names
            .get(&container.name)
            .cloned()
            .unwrap_or_else(|| seccomp_name(&namespace, workload, &container.name));
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
    let changed = merge::behavior_changed(&previous.containers, &containers);
    let window = profile
        .spec
        .stability_window
        .as_deref()
        .and_then(|w| humantime::parse_duration(w).ok())
        .unwrap_or(default_window);
    let last_change = previous
        .last_change
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map(|t| t.as_second());
    let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let mut conditions = merged.conditions;
    if let Some(count) = anomalies {
        conditions.push(anomalies_condition(count));
    }
    let mut losing = false;
    if let Some((condition, blocks)) =
        completeness::drops(merged.drops, merged.last_loss, now, window_secs)
    {
        conditions.push(condition);
        losing = blocks;
    }
    // A guarded allow-list changes only by what the user accepts: that
    // is no learning, and does not start the stability clock again.
    let (phase, last) = merge::next_phase(
        changed && !already_guarding,
        losing || !merged.incomplete.is_empty(),
        last_change,
        now,
        window_secs,
    );
    BehaviorProfileStatus {
        phase,
        guarding: already_guarding || guard::starts_guarding(profile.spec.mode, phase),
        reports: merged.reports,
        replicas: merged.replicas,
        nodes: merged.nodes,
        last_change: Timestamp::from_second(last).ok().map(|t| t.to_string()),
        containers,
        conditions,
        // Derived by the reconcile, when the cluster can say what it needs.
        network_policy: None,
    }
}

/// The `Anomalies` condition of a guarding profile with `count` items
/// outside it.
fn anomalies_condition(count: u64) -> ProfileCondition {
    if count == 0 {
        return ProfileCondition {
            type_: ANOMALIES.into(),
            status: "False".into(),
            reason: "NoneSeen".into(),
            message: "guarding: nothing seen outside the profile".into(),
        };
    }
    ProfileCondition {
        type_: ANOMALIES.into(),
        status: "True".into(),
        reason: "OutsideProfile".into(),
        message: format!(
            "guarding: {count} item(s) seen outside the profile, not learnt (the most recent in status.containers[].anomalies); allow one with spec.accept, or set spec.mode to Learn"
        ),
    }
}

/// The condition type that counts anomalies.
pub const ANOMALIES: &str = "Anomalies";

/// The Events that tell the change from `previous` to `status`: (type,
/// reason, note).
pub fn events(
    previous: &BehaviorProfileStatus,
    status: &BehaviorProfileStatus,
) -> Vec<(EventType, &'static str, String)> {
    let mut events = Vec::new();
    if merge::behavior_changed(&previous.containers, &status.containers) {
        events.push((
            EventType::Normal,
            reasons::BEHAVIOR_CHANGED,
            change_note(previous, status),
        ));
    }
    if previous.phase != status.phase {
        let reason = match status.phase {
            Phase::Stable => reasons::STABLE,
            Phase::Learning => reasons::LEARNING,
        };
        events.push((
            EventType::Normal,
            reason,
            format!("profile is now {reason}"),
        ));
    }
    let skipped = |s: &BehaviorProfileStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "SkippedEntries")
            .map(|c| c.message.clone())
    };
    if let Some(message) = skipped(status)
        && skipped(previous).as_ref() != Some(&message)
    {
        events.push((EventType::Warning, reasons::SKIPPED_ENTRIES, message));
    }
    events
}

/// Writes the status when it changed, and tells what changed in Events.
pub async fn publish(
    api: &Api<BehaviorProfile>,
    recorder: &Recorder,
    profile: &BehaviorProfile,
    status: BehaviorProfileStatus,
) -> Result<(), kube::Error> {
    let previous = profile.status.clone();
    if previous.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": BehaviorProfile::api_version(&()),
        "kind": BehaviorProfile::kind(&()),
        "status": status,
    });
    api.patch_status(
        &profile.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    let reference = profile.object_ref(&());
    for (type_, reason, note) in events(&previous.unwrap_or_default(), &status) {
        event(recorder, &reference, type_, reason, &note).await;
    }
    Ok(())
}

/// Publishes one Event about `reference` (a failure is only logged: Events
/// are best effort).
pub(super) async fn event(
    recorder: &Recorder,
    reference: &ObjectReference,
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
    if let Err(error) = recorder.publish(&event, reference).await {
        debug!(%error, "event not recorded");
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
    use crate::controller::guard::Guard;
    use crate::controller::merge::WorkloadMerge;
    use imprint_crd::profile::{Accepted, AnomalyKind, BehaviorProfileSpec, Mode};
    use imprint_crd::report::{Subject, SyscallSet};

    fn report(syscalls: &[&str]) -> ContainerBehaviorReportSpec {
        let mut spec = ContainerBehaviorReportSpec {
            subject: Subject {
                pod: Some("web-1".into()),
                pod_uid: Some("uid-1".into()),
                node: Some("n1".into()),
                container: Some("app".into()),
                ..Subject::default()
            },
            syscalls: SyscallSet {
                arch: "x86_64".into(),
                names: syscalls.iter().map(|s| s.to_string()).collect(),
                unknown_numbers: vec![],
                arguments: Vec::new(),
            },
            ..Default::default()
        };
        spec.stats.start_observed = Some(true);
        spec
    }

    /// One reconcile of `profile` over `reports` at `now`, as the
    /// controller makes it: the new status.
    fn reconcile(
        profile: &BehaviorProfile,
        reports: &[ContainerBehaviorReportSpec],
        now: i64,
    ) -> BehaviorProfileStatus {
        let mut guard = Guard::of(profile);
        let mut merging = WorkloadMerge::new(&profile.spec.overrides);
        for r in reports {
            merging.add(r);
            if let Some(g) = guard.as_mut() {
                g.observe(r);
            }
        }
        let (merged, facts) = merging.finish(None);
        let specs: Vec<&ContainerBehaviorReportSpec> = facts.iter().collect();
        compute(
            profile,
            merged,
            guard.map(Guard::finish),
            &specs,
            &BTreeMap::new(),
            Duration::from_secs(600),
            now,
        )
    }

    fn condition<'a>(
        status: &'a BehaviorProfileStatus,
        type_: &str,
    ) -> Option<&'a ProfileCondition> {
        status.conditions.iter().find(|c| c.type_ == type_)
    }

    #[test]
    fn a_profile_learns_until_stable_then_guards_and_accepts_what_it_is_told() {
        let mut profile = BehaviorProfile::new("deployment-web", BehaviorProfileSpec::default());
        profile.metadata.namespace = Some("shop".into());
        let learnt = [report(&["read", "write"])];
        let first = reconcile(&profile, &learnt, 1_000);
        assert_eq!((first.phase, first.guarding), (Phase::Learning, false));
        profile.status = Some(first);
        let stable = reconcile(&profile, &learnt, 1_700);
        assert_eq!((stable.phase, stable.guarding), (Phase::Stable, true));
        let allowed = stable.containers[0].syscalls.clone();
        profile.status = Some(stable);

        // An intruder's syscall: an anomaly, not learnt; still Stable.
        let intruded = [report(&["read", "write"]), report(&["read", "ptrace"])];
        let guarded = reconcile(&profile, &intruded, 1_800);
        assert_eq!((guarded.phase, guarded.guarding), (Phase::Stable, true));
        assert_eq!(
            guarded.containers[0].syscalls, allowed,
            "the allow-list is unchanged"
        );
        let anomalies = &guarded.containers[0].anomalies;
        assert_eq!(anomalies.len(), 1);
        assert_eq!(
            (anomalies[0].kind, anomalies[0].value.as_str()),
            (AnomalyKind::Syscall, "ptrace")
        );
        assert_eq!(condition(&guarded, ANOMALIES).unwrap().status, "True");
        profile.status = Some(guarded);

        // The user accepts it: allowed, no anomaly left.
        profile.spec.accept.push(Accepted {
            container: Some("app".into()),
            kind: AnomalyKind::Syscall,
            value: "ptrace".into(),
        });
        let accepted = reconcile(&profile, &intruded, 1_900);
        assert!(
            accepted.containers[0]
                .syscalls
                .contains(&"ptrace".to_string())
        );
        assert!(accepted.containers[0].anomalies.is_empty());
        assert_eq!(condition(&accepted, ANOMALIES).unwrap().status, "False");
        assert_eq!(accepted.phase, Phase::Stable, "accepting is not learning");
        profile.status = Some(accepted);

        // Learn mode learns again.
        profile.spec.accept.clear();
        profile.spec.mode = Mode::Learn;
        let learning = reconcile(&profile, &[report(&["read", "write", "mount"])], 2_000);
        assert!(!learning.guarding);
        assert!(
            learning.containers[0]
                .syscalls
                .contains(&"mount".to_string())
        );
        assert!(condition(&learning, ANOMALIES).is_none());
    }

    #[test]
    fn guard_mode_guards_from_its_first_stable_status_without_waiting() {
        let mut profile = BehaviorProfile::new(
            "deployment-web",
            BehaviorProfileSpec {
                mode: Mode::Guard,
                ..BehaviorProfileSpec::default()
            },
        );
        profile.metadata.namespace = Some("shop".into());
        let first = reconcile(&profile, &[report(&["read"])], 1_000);
        assert!(first.guarding, "Guard guards from the first reconcile on");
        profile.status = Some(first);
        let next = reconcile(&profile, &[report(&["read", "bpf"])], 1_010);
        assert!(!next.containers[0].syscalls.contains(&"bpf".to_string()));
        assert_eq!(next.containers[0].anomalies[0].value, "bpf");
    }
}
