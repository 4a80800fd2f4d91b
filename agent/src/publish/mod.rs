//! Writing ContainerBehaviorReports to the API server: names, labels,
//! size bound, owner and finalizer, server-side apply.

use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub use crate::kube_names::{label_value, object_name};

pub mod alertmanager;
pub mod alerts;
#[cfg(test)]
mod fixtures;
pub mod plan;
pub mod publisher;

/// Field manager of the node agent's server-side applies.
pub const FIELD_MANAGER: &str = "imprint-agent";

/// Finalizer the agent puts on each report: the controller folds the
/// report into its workload's archive before the report may go.
pub const FOLD_FINALIZER: &str = "imprint.dev/fold";

/// Largest report the agent writes (the API server takes up to 1.5 MiB;
/// etcd and watchers are happier with less).
pub const MAX_REPORT_BYTES: usize = 512 * 1024;

/// Label keys put on reports and profiles.
pub mod labels {
    /// Node that wrote the report.
    pub const NODE: &str = "imprint.dev/node";
    /// Kind of the owning workload.
    pub const WORKLOAD_KIND: &str = "imprint.dev/workload-kind";
    /// Name of the owning workload.
    pub const WORKLOAD_NAME: &str = "imprint.dev/workload-name";
    /// Container name.
    pub const CONTAINER: &str = "imprint.dev/container";
    /// Marks an archive report (folded reports of deleted pods).
    pub const ARCHIVE: &str = "imprint.dev/archive";

    use std::collections::BTreeMap;

    use imprint_crd::report::WorkloadRef;

    use crate::kube_names::label_value;

    /// The labels naming a workload (and a container of it).
    pub fn of_workload(
        workload: &WorkloadRef,
        container: Option<&str>,
    ) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = [
            (WORKLOAD_KIND.to_string(), label_value(&workload.kind)),
            (WORKLOAD_NAME.to_string(), label_value(&workload.name)),
        ]
        .into();
        if let Some(container) = container {
            map.insert(CONTAINER.to_string(), label_value(container));
        }
        map
    }
}

/// Name of the report of one container of one pod:
/// `<pod>-<container>-<hash>` (8 hex digits over both names; at most 253
/// characters), so pod `a-b` + container `c` and pod `a` + container `b-c`
/// get different reports.
pub fn report_name(pod: &str, container: &str) -> String {
    crate::kube_names::injective_name("report", &[pod, container], 8)
}

/// The name an earlier release gave the report of one container of one
/// pod (`<pod>-<container>`, not injective): a report found under it is
/// adopted, and written under that name while its pod lives.
pub fn earlier_report_name(pod: &str, container: &str) -> String {
    object_name(&format!("{pod}-{container}"), 253)
}

/// Keeps the serialized report under `max` bytes without ever leaving out
/// what a recommendation depends on (the syscalls, the capabilities, the
/// writes, the executions that gain privilege or run as root): reads fold
/// into their directories (`dir/*`, deepest first), then the executions
/// that decide nothing, the network endpoints and the folded reads are
/// cut, then writes fold (the fact that something below the directory is
/// written stays), and last the arguments of the deciding executions go. Every
/// step is noted in `stats.truncated`. Returns whether it changed anything.
pub fn bound(spec: &mut ContainerBehaviorReportSpec, max: usize) -> bool {
    let size = |spec: &ContainerBehaviorReportSpec| serde_json::to_vec(spec).map_or(0, |v| v.len());
    let kib = max / 1024;
    let mut notes = Vec::new();
    if size(spec) > max {
        let folded = fold_files(spec, max, &size, |f| !f.access.iter().any(|a| a.is_write()));
        if folded > 0 {
            notes.push(format!(
                "files: {folded} read paths folded into their directories to keep the report under {kib} KiB"
            ));
        }
    }
    let mut cut = [0usize; 3];
    let mut rounds = 0;
    while size(spec) > max && rounds < 64 {
        rounds += 1;
        let ordinary = spec.executables.iter().filter(|e| !deciding(e)).count();
        let reads = spec
            .files
            .iter()
            .filter(|f| !f.access.iter().any(|a| a.is_write()))
            .count();
        let lengths = [ordinary, spec.network.len(), reads];
        if lengths.iter().all(|l| *l == 0) {
            break;
        }
        let longest = if lengths[0] + lengths[1] > 0 {
            usize::from(lengths[1] > lengths[0])
        } else {
            2
        };
        let drop = lengths[longest] - lengths[longest] * 3 / 4;
        cut[longest] += drop;
        match longest {
            0 => drop_last(&mut spec.executables, drop, |e| !deciding(e)),
            1 => {
                let keep = spec.network.len() - drop;
                spec.network.truncate(keep);
            }
            _ => drop_last(&mut spec.files, drop, |f| {
                !f.access.iter().any(|a| a.is_write())
            }),
        }
    }
    for (what, n) in ["executables", "network", "files"].iter().zip(cut) {
        if n > 0 {
            notes.push(format!(
                "{what}: {n} entries left out to keep the report under {kib} KiB"
            ));
        }
    }
    if size(spec) > max {
        let folded = fold_files(spec, max, &size, |f| f.access.iter().any(|a| a.is_write()));
        if folded > 0 {
            notes.push(format!(
                "files: {folded} written paths folded into their directories to keep the report under {kib} KiB"
            ));
        }
    }
    if size(spec) > max {
        let with_args = spec
            .executables
            .iter()
            .filter(|e| !e.args.is_empty())
            .count();
        for exec in &mut spec.executables {
            exec.args.clear();
        }
        spec.executables.dedup_by(|b, a| {
            if a.path == b.path {
                a.count = a.count.saturating_add(b.count);
                a.setuid |= b.setuid;
                a.setgid |= b.setgid;
                for cap in std::mem::take(&mut b.file_capabilities) {
                    if !a.file_capabilities.contains(&cap) {
                        a.file_capabilities.push(cap);
                    }
                }
                a.euid = a.euid.min(b.euid);
                true
            } else {
                false
            }
        });
        notes.push(format!(
            "executables: the arguments of {with_args} executions left out to keep the report under {kib} KiB"
        ));
    }
    let changed = !notes.is_empty();
    for note in notes {
        imprint_crd::report::add_note(&mut spec.stats.truncated, &note);
    }
    spec.update_counts();
    changed
}

/// Whether an execution decides a securityContext field: it gains
/// privilege (set-user-id, set-group-id, file capabilities) or runs as
/// root.
fn deciding(exec: &imprint_crd::report::Executable) -> bool {
    exec.gains_privilege() || exec.euid == 0
}

/// Removes the last `n` entries of `list` that `cut` selects.
fn drop_last<T>(list: &mut Vec<T>, mut n: usize, cut: impl Fn(&T) -> bool) {
    let mut index = list.len();
    while n > 0 && index > 0 {
        index -= 1;
        if cut(&list[index]) {
            list.remove(index);
            n -= 1;
        }
    }
}

/// Folds the files `select` picks into their directories, one level at a
/// time from the deepest, until the report fits in `max` (never above the
/// first level: `/dir/*`). Returns how many entries went.
fn fold_files(
    spec: &mut ContainerBehaviorReportSpec,
    max: usize,
    size: &dyn Fn(&ContainerBehaviorReportSpec) -> usize,
    select: impl Fn(&imprint_crd::report::FileAccess) -> bool,
) -> usize {
    use std::collections::{BTreeMap, BTreeSet};
    let components = |path: &str| {
        path.trim_start_matches('/')
            .split('/')
            .filter(|c| *c != "*" && !c.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = spec.files.len();
    let deepest = spec
        .files
        .iter()
        .filter(|f| select(f))
        .map(|f| components(&f.path).len())
        .max()
        .unwrap_or(0);
    for depth in (1..deepest).rev() {
        if size(spec) <= max {
            break;
        }
        let mut files: BTreeMap<String, BTreeSet<imprint_crd::report::Access>> = BTreeMap::new();
        for file in spec.files.drain(..) {
            let parts = components(&file.path);
            let path = if select(&file) && parts.len() > depth {
                format!("/{}/*", parts[..depth].join("/"))
            } else {
                file.path
            };
            files.entry(path).or_default().extend(file.access);
        }
        spec.files = files
            .into_iter()
            .map(|(path, access)| imprint_crd::report::FileAccess { path, access })
            .collect();
    }
    before - spec.files.len()
}

/// Whether two versions of a report differ in what they say the container
/// does, not only in how often (exec counts, event counts, last seen):
/// only such a change is worth a write before the container exits.
pub fn behavior_differs(a: &ContainerBehaviorReportSpec, b: &ContainerBehaviorReportSpec) -> bool {
    fn material(spec: &ContainerBehaviorReportSpec) -> ContainerBehaviorReportSpec {
        let mut spec = spec.clone();
        spec.window.last_seen = None;
        spec.stats.events = 0;
        for exec in &mut spec.executables {
            exec.count = 0;
        }
        spec
    }
    material(a) != material(b)
}

/// The report object to apply: name, namespace, labels, the pod as owner
/// (so the report goes with the pod) and the fold finalizer.
pub fn report_object(
    name: &str,
    spec: ContainerBehaviorReportSpec,
    owner_pod_uid: Option<&str>,
) -> ContainerBehaviorReport {
    let subject = &spec.subject;
    let mut labels = match &subject.workload {
        Some(workload) => labels::of_workload(workload, subject.container.as_deref()),
        None => std::collections::BTreeMap::new(),
    };
    if let Some(node) = &subject.node {
        labels.insert(labels::NODE.to_string(), label_value(node));
    }
    if let Some(container) = &subject.container {
        labels.insert(labels::CONTAINER.to_string(), label_value(container));
    }
    let owner = match (owner_pod_uid, &subject.pod) {
        (Some(uid), Some(pod)) => Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod.clone(),
            uid: uid.into(),
            controller: Some(false),
            block_owner_deletion: Some(false),
        }]),
        _ => None,
    };
    let mut report = ContainerBehaviorReport::new(name, spec);
    report.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: report.spec.subject.namespace.clone(),
        labels: Some(labels),
        owner_references: owner,
        finalizers: Some(vec![FOLD_FINALIZER.to_string()]),
        ..ObjectMeta::default()
    };
    report
}

/// Removes the fold finalizer from a report, keeping any other finalizer.
/// `resource_version` (when given) makes the patch fail with 409 if the
/// report changed since `finalizers` were read. A report already gone is
/// not an error: `Ok(false)`; `Ok(true)` when the finalizer was removed.
pub async fn release_fold(
    api: &kube::Api<ContainerBehaviorReport>,
    name: &str,
    finalizers: &[String],
    resource_version: Option<&str>,
) -> Result<bool, kube::Error> {
    if !finalizers.iter().any(|f| f == FOLD_FINALIZER) {
        return Ok(false);
    }
    let remaining: Vec<&String> = finalizers.iter().filter(|f| *f != FOLD_FINALIZER).collect();
    let mut patch = serde_json::json!({ "metadata": { "finalizers": remaining } });
    if let Some(version) = resource_version {
        patch["metadata"]["resourceVersion"] = version.into();
    }
    match api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::report::{Access, FileAccess};

    #[test]
    fn counts_alone_are_no_change() {
        use imprint_crd::report::Executable;
        let mut a = ContainerBehaviorReportSpec::default();
        a.executables.push(Executable {
            path: "/bin/sleep".into(),
            count: 1,
            ..Executable::default()
        });
        let mut b = a.clone();
        b.executables[0].count = 40;
        b.stats.events = 99;
        b.window.last_seen = Some("2026-11-28T00:00:00Z".into());
        assert!(!behavior_differs(&a, &b));
        b.syscalls.names.push("nanosleep".into());
        assert!(behavior_differs(&a, &b));
    }

    #[test]
    fn names_are_valid_bounded_and_distinct() {
        let name = report_name("web-7d9-abc", "nginx");
        assert!(name.starts_with("web-7d9-abc-nginx-"), "{name}");
        assert_ne!(report_name("a-b", "c"), report_name("a", "b-c"));
        assert_eq!(
            earlier_report_name("a-b", "c"),
            earlier_report_name("a", "b-c")
        );
        assert_eq!(object_name("Web_Server", 253), "web-server");
        let long_a = "a".repeat(300);
        let long_b = format!("{}b", "a".repeat(299));
        let (a, b) = (report_name(&long_a, "c"), report_name(&long_b, "c"));
        assert!(a.len() <= 253 && b.len() <= 253, "{} {}", a.len(), b.len());
        assert_ne!(a, b);
        assert_eq!(a, report_name(&long_a, "c"), "deterministic");
    }

    #[test]
    fn label_values_fit() {
        assert_eq!(label_value("node-1"), "node-1");
        let long = label_value(&"x".repeat(100));
        assert!(long.len() <= 63);
        assert!(long.chars().next().unwrap().is_ascii_alphanumeric());
        assert_eq!(label_value("-a b-"), label_value("-a b-"));
        assert!(!label_value("-a b-").starts_with('-'));
    }

    #[test]
    fn big_reports_fold_reads_first_and_say_so() {
        let mut spec = ContainerBehaviorReportSpec {
            files: (0..20_000)
                .map(|i| FileAccess {
                    path: format!("/var/lib/data/some/long/directory/name/file-{i:06}"),
                    access: [Access::Read].into(),
                })
                .collect(),
            ..ContainerBehaviorReportSpec::default()
        };
        assert!(bound(&mut spec, MAX_REPORT_BYTES));
        let size = serde_json::to_vec(&spec).unwrap().len();
        assert!(size <= MAX_REPORT_BYTES, "{size}");
        assert_eq!(spec.files.len(), 1);
        assert_eq!(
            spec.files[0].path,
            "/var/lib/data/some/long/directory/name/*"
        );
        assert_eq!(spec.stats.files, 1);
        assert!(spec.stats.truncated[0].starts_with("files: 19999 read paths folded"));
        let mut small = ContainerBehaviorReportSpec::default();
        assert!(!bound(&mut small, MAX_REPORT_BYTES));
        assert!(small.stats.truncated.is_empty());
    }

    /// An archive takes fold after fold, each bounded: its notes say what
    /// the latest bounding did, one per kind, and never pile up.
    #[test]
    fn notes_of_repeated_folds_do_not_pile_up() {
        let mut archive = ContainerBehaviorReportSpec::default();
        for round in 0..6 {
            // Each pod read a different number of files: each bounding
            // notes other counts.
            let mut folded = crowded();
            folded.files.extend((0..round * 10).map(|i| FileAccess {
                path: format!("/srv/extra-{round}/file-{i}"),
                access: [Access::Read].into(),
            }));
            bound(&mut folded, MAX_REPORT_BYTES);
            archive.absorb(&folded);
            bound(&mut archive, MAX_REPORT_BYTES);
        }
        let size = serde_json::to_vec(&archive).unwrap().len();
        assert!(size <= MAX_REPORT_BYTES, "{size}");
        let notes = &archive.stats.truncated;
        assert!(!notes.is_empty() && notes.len() <= 5, "{notes:#?}");
    }

    /// 4,000 long read paths, one pid file write, 3,000 long executions and
    /// one set-user-id execution past them all.
    fn crowded() -> ContainerBehaviorReportSpec {
        use imprint_crd::report::Executable;
        let mut files: Vec<FileAccess> = (0..4_000)
            .map(|i| FileAccess {
                path: format!(
                    "/usr/share/app/{}/{}/resource-{i:05}.dat",
                    "d".repeat(60),
                    i % 97
                ),
                access: [Access::Read].into(),
            })
            .collect();
        files.push(FileAccess {
            path: "/var/run/app.pid".into(),
            access: [Access::Write, Access::Create].into(),
        });
        let mut executables: Vec<Executable> = (0..3_000)
            .map(|i| Executable {
                path: format!("/usr/bin/tool-{i:05}"),
                args: vec![format!("tool-{i}"), "x".repeat(100)],
                count: 1,
                euid: 1000,
                ..Executable::default()
            })
            .collect();
        executables.push(Executable {
            path: "/usr/bin/zz-setuid-helper".into(),
            args: vec!["helper".into()],
            count: 1,
            euid: 0,
            setuid: true,
            ..Executable::default()
        });
        ContainerBehaviorReportSpec {
            files,
            executables,
            ..ContainerBehaviorReportSpec::default()
        }
    }

    #[test]
    fn bounding_never_cuts_what_a_recommendation_depends_on() {
        let mut spec = crowded();
        assert!(serde_json::to_vec(&spec).unwrap().len() > MAX_REPORT_BYTES);
        assert!(bound(&mut spec, MAX_REPORT_BYTES));
        assert!(serde_json::to_vec(&spec).unwrap().len() <= MAX_REPORT_BYTES);
        assert!(
            spec.files.iter().any(|f| f.path == "/var/run/app.pid"),
            "the write stays"
        );
        assert!(
            spec.executables
                .iter()
                .any(|e| e.path == "/usr/bin/zz-setuid-helper" && e.setuid),
            "the set-user-id execution stays"
        );
        // Merged, the recommendation is the one the full report gives.
        let mut full = crowded();
        full.syscalls.arch = "x86_64".into();
        spec.syscalls.arch = "x86_64".into();
        let recommended = |s: &ContainerBehaviorReportSpec| {
            let merged = crate::controller::merge::merge_workload(
                &[s],
                &Default::default(),
                &Default::default(),
            );
            merged.containers[0].security_context.clone()
        };
        let bounded = recommended(&spec);
        assert!(!bounded.read_only_root_filesystem);
        assert!(bounded.allow_privilege_escalation);
        assert!(!bounded.run_as_non_root);
        assert_eq!(bounded, recommended(&full));
        let merged = crate::controller::merge::merge_workload(
            &[&spec],
            &Default::default(),
            &Default::default(),
        );
        assert!(
            merged.conditions.iter().any(|c| c.type_ == "Truncated"),
            "the profile says its reports were cut"
        );
    }

    #[test]
    fn the_object_is_owned_by_its_pod_and_held_for_folding() {
        let mut spec = ContainerBehaviorReportSpec::default();
        spec.subject.namespace = Some("shop".into());
        spec.subject.pod = Some("web-1".into());
        spec.subject.node = Some("node-a".into());
        let report = report_object("web-1-nginx", spec, Some("uid-1"));
        assert_eq!(report.metadata.namespace.as_deref(), Some("shop"));
        let owner = &report.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Pod", "uid-1"));
        assert_eq!(
            report.metadata.finalizers.as_deref(),
            Some(&[FOLD_FINALIZER.to_string()][..])
        );
        assert_eq!(report.metadata.labels.unwrap()[labels::NODE], "node-a");
    }
}
