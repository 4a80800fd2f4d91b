//! What the node agent does with one container's report, decided without
//! any I/O: which report a cgroup feeds (or why none), the report's spec
//! from the behavior, pod and workload, and whether it must be written
//! (created, updated) or is unchanged. [`super::Publisher`] gathers the
//! inputs and applies the decision.

use std::collections::HashMap;

use imprint_crd::report::{ContainerBehaviorReportSpec, WorkloadRef};
use k8s_openapi::api::core::v1::Pod;

use super::{MAX_REPORT_BYTES, behavior_differs, bound, earlier_report_name, report_name};
use crate::capture::aggregate::Behavior;
use crate::cluster::workload::container_facts;
use crate::names::Arch;
use crate::report::{self, Clock};
use crate::runtime::{self, Filter, Holder};

/// The report a container cgroup feeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The pod's namespace (where the report lives).
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID, when the runtime or the cgroup path told it.
    pub pod_uid: Option<String>,
    /// The container's name.
    pub container: String,
    /// The report's name.
    pub name: String,
}

/// Why a cgroup gets no report (now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Host processes: no container.
    Host,
    /// A container the runtime has not named (yet): retried later.
    Unresolved,
    /// A pod sandbox, a container without pod, or a namespace filtered out.
    NotAPodContainer,
    /// The agent's own pod.
    OwnPod,
    /// The pod runs on another node.
    OtherNode,
}

/// Which report the cgroup of `holder` feeds, or why none.
pub fn target(
    holder: &Holder,
    filter: &Filter,
    own_pod: Option<&(String, String)>,
) -> Result<Target, Skip> {
    let info = match holder {
        Holder::Host => return Err(Skip::Host),
        Holder::Container(_, None) => return Err(Skip::Unresolved),
        Holder::Container(_, Some(info)) => info,
    };
    if info.pod.is_none() || !filter.keeps(holder) {
        return Err(Skip::NotAPodContainer);
    }
    let (Some(namespace), Some(pod), Some(container)) = (
        info.pod_namespace.clone(),
        info.pod.clone(),
        info.container.clone(),
    ) else {
        return Err(Skip::NotAPodContainer);
    };
    if own_pod == Some(&(namespace.clone(), pod.clone())) {
        return Err(Skip::OwnPod);
    }
    let name = report_name(&pod, &container);
    Ok(Target {
        pod_uid: info.pod_uid.clone(),
        namespace,
        pod,
        container,
        name,
    })
}

/// A pod container's report as an earlier release named it: (namespace,
/// pod, container) -> (report name, pod UID).
pub type EarlierNames = HashMap<(String, String, String), (String, Option<String>)>;

/// The reports read back that an earlier release named (`<pod>-<container>`
/// where the name is now injective): each is adopted, so the pod's report
/// goes on under the name it has (its pods and its fold finalizer keep
/// working) instead of a second report beside it.
pub fn earlier_names<'a>(
    reports: impl IntoIterator<Item = (&'a str, &'a str, &'a ContainerBehaviorReportSpec)>,
) -> EarlierNames {
    reports
        .into_iter()
        .filter_map(|(namespace, name, spec)| {
            let pod = spec.subject.pod.as_deref()?;
            let container = spec.subject.container.as_deref()?;
            (name != report_name(pod, container) && name == earlier_report_name(pod, container))
                .then(|| {
                    (
                        (
                            namespace.to_string(),
                            pod.to_string(),
                            container.to_string(),
                        ),
                        (name.to_string(), spec.subject.pod_uid.clone()),
                    )
                })
        })
        .collect()
}

/// `target` under the name an earlier release gave its report, when that
/// report is of this very pod (same UID, when both are known).
pub fn adopt_earlier_name(target: &mut Target, earlier: &EarlierNames) {
    let key = (
        target.namespace.clone(),
        target.pod.clone(),
        target.container.clone(),
    );
    if let Some((name, uid)) = earlier.get(&key)
        && (uid.is_none() || target.pod_uid.is_none() || *uid == target.pod_uid)
    {
        target.name = name.clone();
    }
}

/// What a failed report write means for the rest of the tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFailure {
    /// The API server is unreachable, overloaded or failing: the tick
    /// stops, every report waits for the next.
    Unreachable,
    /// The report's namespace is being deleted or is gone: nothing can be
    /// written there again; the other reports go on.
    NamespaceGone,
    /// This write alone was refused (an admission policy, validation): it
    /// is tried again at the next tick, the other reports go on.
    Refused,
}

/// Whether the API server refused a write because the namespace is being
/// deleted (the NamespaceLifecycle admission plugin).
pub fn namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status)
        if status.code == 403 && status.message.contains("is being terminated"))
}

/// What `error`, from writing one report, means: a refusal of that one
/// write must never hold up the other reports of the node.
pub fn write_failure(error: &kube::Error) -> WriteFailure {
    match error {
        _ if namespace_terminating(error) => WriteFailure::NamespaceGone,
        kube::Error::Api(status)
            if status.code == 404
                && status
                    .details
                    .as_ref()
                    .is_some_and(|d| d.kind == "namespaces") =>
        {
            WriteFailure::NamespaceGone
        }
        // Timeouts and throttling are the server's state, not the write's.
        kube::Error::Api(status) if matches!(status.code, 408 | 429) => WriteFailure::Unreachable,
        kube::Error::Api(status) if (400..500).contains(&status.code) => WriteFailure::Refused,
        _ => WriteFailure::Unreachable,
    }
}

/// Whether `pod` is bound to a node other than `node` (its cgroup here is
/// a leftover, or the name was reused).
pub fn on_other_node(pod: Option<&Pod>, node: &str) -> bool {
    pod.and_then(|p| p.spec.as_ref())
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| n != node)
}

/// The workload of a pod that is gone from the API: the one it had when
/// it was last seen, else the bare pod.
pub fn workload_of_gone_pod(pod: &str, last_known: Option<&WorkloadRef>) -> WorkloadRef {
    last_known.cloned().unwrap_or_else(|| WorkloadRef {
        kind: "Pod".into(),
        name: pod.into(),
    })
}

/// Everything the spec of one container's report is made of.
pub struct SpecInput<'a> {
    /// The report it feeds.
    pub target: &'a Target,
    /// The container's cgroup path and holder.
    pub path: &'a str,
    /// What holds the cgroup.
    pub holder: &'a Holder,
    /// This node's name.
    pub node: &'a str,
    /// The owning workload.
    pub workload: WorkloadRef,
    /// The pod, when the API still has it (mounts, securityContext).
    pub pod: Option<&'a Pod>,
    /// What the container did, drops folded in.
    pub behavior: &'a Behavior,
    /// The machine's architecture.
    pub arch: Arch,
}

/// The report spec (before peers are named and earlier reports merged).
pub fn spec(input: SpecInput<'_>, clock: &Clock) -> ContainerBehaviorReportSpec {
    let mut subject = runtime::subject(input.path, input.holder, Some(input.node.to_string()));
    subject.workload = Some(input.workload);
    if let Some(pod) = input.pod {
        let (writable, context) = container_facts(pod, &input.target.container);
        subject.writable_mounts = writable;
        subject.security_context = context;
    }
    report::build(
        &input.target.name,
        subject,
        input.behavior,
        input.arch,
        clock,
    )
    .spec
}

/// Whether the part of a report that cgroup `path` feeds saw its
/// container start: the container's own cgroup did when it was made after
/// recording began (not `preexisting`); a child cgroup (`path` below the
/// container's cgroup) says nothing of the container's start.
pub fn start_observed(
    path: &str,
    container_cgroup: Option<&str>,
    preexisting: bool,
) -> Option<bool> {
    match container_cgroup {
        Some(own) if own != path => None,
        _ => Some(!preexisting),
    }
}

/// What to do with a report.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The agent has not written this report yet: apply it.
    Create(ContainerBehaviorReportSpec),
    /// What the report says changed: apply it.
    Update(ContainerBehaviorReportSpec),
    /// Nothing worth a write (counts alone ride along with the next change
    /// or the container's exit).
    Unchanged,
}

/// One container's report from the part of the cgroup being written
/// (`spec`, whose subject names the container as it runs now), the parts
/// of its other live cgroups, and what the report retained (earlier
/// cgroups of a restarted container, what was written before the agent
/// restarted).
pub fn compose<'a>(
    mut spec: ContainerBehaviorReportSpec,
    others: impl IntoIterator<Item = &'a ContainerBehaviorReportSpec>,
    retained: Option<&'a ContainerBehaviorReportSpec>,
) -> ContainerBehaviorReportSpec {
    for other in others.into_iter().chain(retained) {
        spec.absorb(other);
    }
    spec
}

/// Bounds `spec` and compares it with what was last written
/// (`published`); on exit (`exiting`) any difference, counts included, is
/// written.
pub fn decide(
    mut spec: ContainerBehaviorReportSpec,
    published: Option<&ContainerBehaviorReportSpec>,
    exiting: bool,
) -> Decision {
    bound(&mut spec, MAX_REPORT_BYTES);
    match published {
        None => Decision::Create(spec),
        Some(published) if exiting && *published == spec => Decision::Unchanged,
        Some(published) if !exiting && !behavior_differs(published, &spec) => Decision::Unchanged,
        Some(_) => Decision::Update(spec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::fixtures::{self, ID};
    use imprint_crd::report::{Access, FileAccess};

    const READ: u32 = 0;
    const GETPID: u32 = 39;
    const PERSONALITY: u32 = 135;

    fn web() -> WorkloadRef {
        WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    fn api_error(code: u16, message: &str, kind: Option<&str>) -> kube::Error {
        let mut status = kube::core::Status::failure(message, "Reason").with_code(code);
        if let Some(kind) = kind {
            status.details = Some(kube::core::response::StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: kind.into(),
                uid: String::new(),
                causes: Vec::new(),
                retry_after_seconds: 0,
            });
        }
        kube::Error::Api(status.boxed())
    }

    /// A write refused for its own reasons (its namespace being deleted,
    /// an admission policy) never stops the other reports' writes; only an
    /// unreachable or failing API server does.
    #[test]
    fn a_refused_write_does_not_hold_up_the_others() {
        let terminating = api_error(
            403,
            "unable to create new content in namespace shop because it is being terminated",
            None,
        );
        assert_eq!(write_failure(&terminating), WriteFailure::NamespaceGone);
        let gone = api_error(404, "namespaces \"shop\" not found", Some("namespaces"));
        assert_eq!(write_failure(&gone), WriteFailure::NamespaceGone);
        let policy = api_error(403, "ValidatingAdmissionPolicy denied request", None);
        assert_eq!(write_failure(&policy), WriteFailure::Refused);
        assert_eq!(
            write_failure(&api_error(422, "invalid", None)),
            WriteFailure::Refused
        );
        assert_eq!(
            write_failure(&api_error(500, "etcd", None)),
            WriteFailure::Unreachable
        );
        assert_eq!(
            write_failure(&api_error(429, "slow down", None)),
            WriteFailure::Unreachable
        );
        let transport = kube::Error::Service("connection refused".into());
        assert_eq!(write_failure(&transport), WriteFailure::Unreachable);
    }

    /// An upgrade: the report an earlier release wrote as `web-1-nginx` is
    /// written on under that name (never beside it), only for that pod.
    #[test]
    fn a_report_an_earlier_release_named_is_adopted() {
        let holder = fixtures::named("shop", "web-1", "nginx");
        let mut target = target(&holder, &fixtures::agent_filter(), None).unwrap();
        assert_eq!(target.name, report_name("web-1", "nginx"));
        let mut earlier = ContainerBehaviorReportSpec::default();
        earlier.subject.pod = Some("web-1".into());
        earlier.subject.container = Some("nginx".into());
        earlier.subject.pod_uid = target.pod_uid.clone();
        let current_name = report_name("web-1", "nginx");
        let names = earlier_names([
            ("shop", "web-1-nginx", &earlier),
            ("shop", current_name.as_str(), &earlier),
            ("shop", "something-else", &earlier),
        ]);
        assert_eq!(names.len(), 1, "{names:?}");
        let mut other_pod = target.clone();
        other_pod.pod = "web".into();
        other_pod.container = "1-nginx".into();
        adopt_earlier_name(&mut target, &names);
        assert_eq!(target.name, "web-1-nginx");
        let before = other_pod.name.clone();
        adopt_earlier_name(&mut other_pod, &names);
        assert_eq!(
            other_pod.name, before,
            "pod web, container 1-nginx: its own name"
        );
        // A pod of the same name made again (another UID) starts anew.
        let mut again = target.clone();
        again.name = current_name.clone();
        again.pod_uid = Some("another-uid".into());
        earlier.subject.pod_uid = Some("first-uid".into());
        let names = earlier_names([("shop", "web-1-nginx", &earlier)]);
        adopt_earlier_name(&mut again, &names);
        assert_eq!(again.name, current_name);
    }

    fn spec_of(syscalls: &[u32], exec_count: u64) -> ContainerBehaviorReportSpec {
        let holder = fixtures::named("shop", "web-1", "nginx");
        let target = target(&holder, &fixtures::agent_filter(), None).unwrap();
        let pod = fixtures::pod("shop", "web-1", "node-a");
        spec(
            SpecInput {
                target: &target,
                path: &fixtures::path(),
                holder: &holder,
                node: "node-a",
                workload: web(),
                pod: Some(&pod),
                behavior: &fixtures::behavior(syscalls, exec_count),
                arch: Arch::X86_64,
            },
            &Clock::now(),
        )
    }

    #[test]
    fn only_the_containers_own_cgroup_tells_whether_its_start_was_seen() {
        let own = "/kubepods/pod1/abc";
        assert_eq!(start_observed(own, Some(own), false), Some(true));
        assert_eq!(start_observed(own, Some(own), true), Some(false));
        // systemd in a container made init.scope after the agent started:
        // its container still started before.
        assert_eq!(
            start_observed("/kubepods/pod1/abc/init.scope", Some(own), false),
            None
        );
    }

    #[test]
    fn a_named_pod_container_feeds_its_report() {
        let holder = fixtures::named("shop", "web-1", "nginx");
        let target = target(&holder, &fixtures::agent_filter(), None).unwrap();
        assert_eq!(
            target,
            Target {
                namespace: "shop".into(),
                pod: "web-1".into(),
                pod_uid: Some("uid-web-1".into()),
                container: "nginx".into(),
                name: report_name("web-1", "nginx"),
            }
        );
    }

    #[test]
    fn what_gets_no_report_says_why() {
        let filter = fixtures::agent_filter();
        assert_eq!(target(&Holder::Host, &filter, None), Err(Skip::Host));
        assert_eq!(
            target(&fixtures::unnamed(), &filter, None),
            Err(Skip::Unresolved)
        );
        assert_eq!(
            target(&fixtures::sandbox("shop", "web-1"), &filter, None),
            Err(Skip::NotAPodContainer)
        );
        let only_other = Filter {
            namespaces: vec!["other".into()],
            ..fixtures::agent_filter()
        };
        assert_eq!(
            target(
                &fixtures::named("shop", "web-1", "nginx"),
                &only_other,
                None
            ),
            Err(Skip::NotAPodContainer)
        );
        let own = ("imprint".to_string(), "imprint-agent-x".to_string());
        assert_eq!(
            target(
                &fixtures::named("imprint", "imprint-agent-x", "agent"),
                &filter,
                Some(&own)
            ),
            Err(Skip::OwnPod)
        );
    }

    #[test]
    fn pods_of_other_nodes_and_gone_pods() {
        let pod = fixtures::pod("shop", "web-1", "node-a");
        assert!(!on_other_node(Some(&pod), "node-a"));
        assert!(on_other_node(Some(&pod), "node-b"));
        assert!(!on_other_node(None, "node-b"), "a gone pod is this node's");
        assert_eq!(workload_of_gone_pod("web-1", Some(&web())), web());
        assert_eq!(
            workload_of_gone_pod("solo", None),
            WorkloadRef {
                kind: "Pod".into(),
                name: "solo".into()
            }
        );
    }

    #[test]
    fn the_spec_names_the_container_and_what_its_pod_says() {
        let spec = spec_of(&[READ, GETPID], 1);
        let subject = &spec.subject;
        assert_eq!(subject.node.as_deref(), Some("node-a"));
        assert_eq!(subject.workload.as_ref(), Some(&web()));
        assert_eq!(subject.container_id.as_deref(), Some(ID));
        assert_eq!(subject.writable_mounts, ["/var/cache/nginx"]);
        assert_eq!(
            subject
                .security_context
                .as_ref()
                .and_then(|c| c.allow_privilege_escalation),
            Some(false)
        );
        assert_eq!(spec.syscalls.names, ["getpid", "read"]);
    }

    #[test]
    fn first_writes_create_and_counts_alone_wait() {
        let first = spec_of(&[READ], 1);
        let Decision::Create(written) = decide(first, None, false) else {
            panic!("the first write creates");
        };
        let more_execs = spec_of(&[READ], 7);
        assert_eq!(
            decide(more_execs.clone(), Some(&written), false),
            Decision::Unchanged,
            "counts alone ride along with the next change"
        );
        assert!(
            matches!(decide(more_execs, Some(&written), true), Decision::Update(s) if s.executables[0].count == 7),
            "on exit, counts are written too"
        );
        assert!(matches!(
            decide(spec_of(&[READ, GETPID], 1), Some(&written), false),
            Decision::Update(_)
        ));
    }

    #[test]
    fn a_report_keeps_every_cgroup_of_its_container_and_what_came_before() {
        // A restarted container: its first cgroup made `personality` and
        // exec'd nginx twice; the live one reads and exec'd it once.
        let first_run = spec_of(&[PERSONALITY], 2);
        let child = spec_of(&[GETPID], 0);
        let now = spec_of(&[READ], 1);
        let spec = compose(now, [&child], Some(&first_run));
        assert_eq!(spec.syscalls.names, ["getpid", "personality", "read"]);
        assert_eq!(spec.executables[0].count, 3, "counts add up across cgroups");
    }

    #[test]
    fn specs_are_bounded() {
        let mut now = spec_of(&[READ], 1);
        now.files = (0..20_000)
            .map(|i| FileAccess {
                path: format!("/srv/data/a/long/directory/name/file-{i:06}"),
                access: [Access::Read].into(),
            })
            .collect();
        let Decision::Create(spec) = decide(now, None, false) else {
            panic!("the first write creates");
        };
        assert!(serde_json::to_vec(&spec).unwrap().len() <= MAX_REPORT_BYTES);
        assert!(spec.stats.truncated[0].starts_with("files: "));
    }
}
