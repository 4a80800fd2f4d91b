//! What the reports of a workload say they could not see, as profile
//! conditions: hooks missing on a node, losses no cgroup could be charged
//! with, containers never recorded from their start, time nobody recorded.
//! The blocking ones keep the profile from `Stable`: a profile built from
//! them may lack what its workload needs.

use std::collections::{BTreeMap, BTreeSet};

use imprint_crd::profile::ProfileCondition;
use imprint_crd::report::{ContainerBehaviorReportSpec, NodeLosses};

/// Condition types that keep a profile from `Stable`.
pub const BLOCKING: [&str; 3] = [HOOKS_MISSING, UNATTRIBUTED_LOSSES, START_NOT_OBSERVED];

/// Reports are covered by a profile that is gone (deleted or replaced):
/// what it held of them is missing until their agents write them whole
/// (said, not blocking: a report of a container that does nothing more,
/// such as a completed Job's, is never written again).
pub const COVERAGE_LOST: &str = "CoverageLost";

/// A node lacked hooks, so its reports lack what those hooks see.
pub const HOOKS_MISSING: &str = "HooksMissing";
/// Events were lost on a node where no cgroup could be charged with them.
pub const UNATTRIBUTED_LOSSES: &str = "UnattributedLosses";
/// No replica of a container was recorded from its start.
pub const START_NOT_OBSERVED: &str = "StartNotObserved";
/// Events of the workload's containers were lost in the kernel.
pub const DROPS: &str = "Drops";
/// Containers lived through time nobody recorded (informational).
pub const UNRECORDED: &str = "Unrecorded";

fn condition(type_: &str, reason: &str, message: String) -> ProfileCondition {
    ProfileCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: reason.into(),
        message,
    }
}

/// When the reports of a workload last lost events: `None` when none did.
/// A report without the time of its last loss (written by an older agent)
/// counts from its last event; one without either counts as losing for
/// ever: the safe side.
pub fn last_loss(reports: &[&ContainerBehaviorReportSpec]) -> Option<i64> {
    let seconds = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map(|t| t.as_second())
    };
    reports
        .iter()
        .filter(|r| r.stats.drops.lost())
        .map(|r| {
            seconds(&r.stats.drops.last_at)
                .or_else(|| seconds(&r.window.last_seen))
                .unwrap_or(i64::MAX)
        })
        .max()
}

/// The condition of `drops` events lost, the last at `last` (see
/// [`last_loss`]), and whether it keeps the profile from `Stable`: a loss
/// blocks until a stability window (`window_secs`) has passed since it
/// with no new one. By then what was lost has been seen again (the kernel
/// sends again what it could not send) or was not needed in a whole
/// window; either way the profile would go `Stable` after a window
/// without change.
pub fn drops(
    drops: u64,
    last: Option<i64>,
    now: i64,
    window_secs: i64,
) -> Option<(ProfileCondition, bool)> {
    let last = last?;
    let recovered = last != i64::MAX && now.saturating_sub(last) >= window_secs;
    let when = match k8s_openapi::jiff::Timestamp::from_second(last) {
        Ok(t) if last != i64::MAX => format!("the last at {t}"),
        _ => "at a time the reports do not say".to_string(),
    };
    let (status, reason, tail) = if recovered {
        (
            "False",
            "Recovered",
            "no loss since for a stability window: it no longer keeps the profile Learning",
        )
    } else {
        (
            "True",
            "EventsLost",
            "the profile stays Learning until a stability window passes without loss",
        )
    };
    Some((
        ProfileCondition {
            type_: DROPS.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{drops} events were lost in the kernel, {when}; {tail}"),
        },
        !recovered,
    ))
}

/// The conditions `reports` (one workload's) call for, sorted by type.
pub fn conditions(reports: &[&ContainerBehaviorReportSpec]) -> Vec<ProfileCondition> {
    let mut out = Vec::new();

    let mut missing: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for report in reports {
        let node = report.subject.node.as_deref().unwrap_or("?");
        for hook in &report.stats.missing_hooks {
            missing.entry(hook.as_str()).or_default().insert(node);
        }
    }
    if !missing.is_empty() {
        let parts: Vec<String> = missing
            .iter()
            .map(|(hook, nodes)| {
                let nodes: Vec<&str> = nodes.iter().copied().collect();
                format!("{hook} (nodes {})", nodes.join(", "))
            })
            .collect();
        out.push(condition(
            HOOKS_MISSING,
            "HooksUnavailable",
            format!(
                "not recorded, the profile may lack it: {}; the profile stays Learning",
                parts.join("; ")
            ),
        ));
    }

    let mut losses = NodeLosses::default();
    for report in reports {
        losses.add(&report.stats.node_losses);
    }
    if !losses.is_empty() {
        out.push(condition(
            UNATTRIBUTED_LOSSES,
            "NodeLosses",
            format!(
                "losses no container could be charged with happened while these containers were recorded ({} unattributed drops, {} cgroups without storage, {} syscalls out of range); the profile stays Learning",
                losses.unattributed_drops, losses.storage_failures, losses.syscalls_out_of_range
            ),
        ));
    }

    let mut started: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for report in reports {
        let container = report.subject.container.as_deref().unwrap_or("");
        let (seen, unseen) = started.entry(container).or_default();
        match report.stats.start_observed {
            Some(true) => *seen = true,
            Some(false) => *unseen = true,
            None => {}
        }
    }
    let never: Vec<&str> = started
        .iter()
        .filter(|(_, (seen, unseen))| !seen && *unseen)
        .map(|(name, _)| *name)
        .collect();
    if !never.is_empty() {
        out.push(condition(
            START_NOT_OBSERVED,
            "StartedBeforeAgent",
            format!(
                "no replica of container {} was recorded from its start (each started before the agent), so what it does while starting may be missing; restart one pod (kubectl rollout restart) to record it; the profile stays Learning",
                never.join(", ")
            ),
        ));
    }

    let gaps = reports
        .iter()
        .filter(|r| !r.stats.unrecorded.is_empty())
        .count();
    if gaps > 0 {
        let latest = reports
            .iter()
            .flat_map(|r| &r.stats.unrecorded)
            .max_by(|a, b| a.to.cmp(&b.to))
            .map(|p| format!("; latest {} to {}", p.from, p.to))
            .unwrap_or_default();
        out.push(condition(
            UNRECORDED,
            "AgentNotRecording",
            format!("{gaps} reports lived through time the agent was not recording (restarted or upgraded){latest}"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::report::{Period, Subject};

    fn report(container: &str, node: &str) -> ContainerBehaviorReportSpec {
        ContainerBehaviorReportSpec {
            subject: Subject {
                container: Some(container.into()),
                node: Some(node.into()),
                ..Subject::default()
            },
            ..ContainerBehaviorReportSpec::default()
        }
    }

    fn types(reports: &[&ContainerBehaviorReportSpec]) -> Vec<String> {
        conditions(reports).into_iter().map(|c| c.type_).collect()
    }

    #[test]
    fn a_loss_blocks_until_a_window_passes_without_another() {
        let window = 600;
        let mut a = report("web", "n1");
        a.stats.drops.ring_buffer = 5;
        a.stats.drops.last_at = Some("2026-01-01T00:00:00Z".into());
        let b = report("web", "n2");
        let last = last_loss(&[&a, &b]);
        let at = "2026-01-01T00:00:00Z"
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
            .as_second();
        assert_eq!(last, Some(at));
        let (condition, blocks) = drops(5, last, at + 599, window).unwrap();
        assert!(blocks);
        assert_eq!(
            (condition.type_.as_str(), condition.status.as_str()),
            (DROPS, "True")
        );
        let (condition, blocks) = drops(5, last, at + 600, window).unwrap();
        assert!(!blocks, "{condition:?}");
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "Recovered")
        );
        // A later loss on another replica starts the wait again.
        let mut c = report("web", "n3");
        c.stats.drops.map_full = 1;
        c.stats.drops.last_at = Some("2026-01-01T00:09:00Z".into());
        assert!(drops(6, last_loss(&[&a, &c]), at + 600, window).unwrap().1);
        // A loss of unknown time (an older agent) counts from the report's
        // last event, and without one it never stops blocking.
        a.stats.drops.last_at = None;
        a.window.last_seen = Some("2026-01-01T00:05:00Z".into());
        assert_eq!(last_loss(&[&a]), Some(at + 300));
        a.window.last_seen = None;
        assert!(drops(5, last_loss(&[&a]), i64::MAX - 1, window).unwrap().1);
        // No loss, no condition.
        assert_eq!(last_loss(&[&b]), None);
        assert!(drops(0, None, at, window).is_none());
    }

    #[test]
    fn complete_reports_call_for_nothing() {
        let mut a = report("web", "n1");
        a.stats.start_observed = Some(true);
        let b = report("web", "n2");
        assert!(conditions(&[&a, &b]).is_empty());
    }

    #[test]
    fn a_missing_hook_is_named_with_its_nodes() {
        let mut a = report("web", "n1");
        a.stats.missing_hooks = vec!["tp_btf/cap_capable: capability checks".into()];
        let mut b = report("web", "n2");
        b.stats.missing_hooks = a.stats.missing_hooks.clone();
        let found = conditions(&[&a, &b]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].type_, HOOKS_MISSING);
        assert!(
            found[0]
                .message
                .contains("tp_btf/cap_capable: capability checks (nodes n1, n2)"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn losses_no_cgroup_was_charged_with_block() {
        let mut a = report("web", "n1");
        a.stats.node_losses.unattributed_drops = 3;
        assert_eq!(types(&[&a]), [UNATTRIBUTED_LOSSES]);
    }

    #[test]
    fn one_replica_recorded_from_its_start_is_enough() {
        let mut old = report("web", "n1");
        old.stats.start_observed = Some(false);
        assert_eq!(types(&[&old]), [START_NOT_OBSERVED]);
        let mut new = report("web", "n2");
        new.stats.start_observed = Some(true);
        assert!(types(&[&old, &new]).is_empty());
        // Reports of older agents say nothing either way.
        let unknown = report("web", "n3");
        assert!(types(&[&unknown]).is_empty());
        // Per container: the sidecar's start was never seen.
        let mut sidecar = report("sidecar", "n1");
        sidecar.stats.start_observed = Some(false);
        let found = conditions(&[&old, &new, &sidecar]);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("container sidecar "));
    }

    #[test]
    fn unrecorded_time_is_told_but_does_not_block() {
        let mut a = report("web", "n1");
        a.stats.unrecorded = vec![Period {
            from: "2026-01-01T00:00:00.000Z".into(),
            to: "2026-01-01T00:01:00.000Z".into(),
        }];
        assert_eq!(types(&[&a]), [UNRECORDED]);
        assert!(!BLOCKING.contains(&UNRECORDED));
    }
}
