//! The node agent's publisher: at each tick, turns the changed and exited
//! cgroups of a recording session into ContainerBehaviorReports. It
//! gathers what [`super::plan`] decides on (paths, holders, pods,
//! workloads, the reports written before), and applies the decisions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imprint_crd::report::{
    ContainerBehaviorReport, ContainerBehaviorReportSpec, NodeLosses, Period, WorkloadRef,
};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tracing::{debug, info, warn};

use super::plan::{self, Decision, Skip, SpecInput, Target, WriteFailure};
use super::{FIELD_MANAGER, label_value, labels, report_object};
use crate::cgroups::Hierarchy;
use crate::cluster::guarded::Guarded;
use crate::cluster::peers::PeerIndex;
use crate::cluster::remote::RemotePods;
use crate::cluster::workload::Workloads;
use crate::coverage::{self, Profile};
use crate::metrics::AgentMetrics;
use crate::names::Arch;
use crate::pipeline::Session;
use crate::report::Clock;
use crate::runtime::{self, Filter, Holder};

/// Namespace and name of a report.
pub type Key = (String, String);

/// A container that exited is written once more this long after its
/// cgroup went (late events drained first).
pub const EXIT_GRACE: Duration = Duration::from_millis(500);
/// Longest wait for one API call: a slow API server must not hold the
/// publisher for long.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// An exited container the runtime never named is given up after this.
const UNRESOLVED_GIVE_UP: Duration = Duration::from_secs(120);

/// Who the publisher is and what it reports.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// This node's name.
    pub node: String,
    /// Which pods get reports.
    pub filter: Filter,
    /// The agent's own pod (namespace, name), never reported.
    pub own_pod: Option<(String, String)>,
}

/// What the publisher keeps about one cgroup between ticks.
#[derive(Debug, Default)]
struct Tracked {
    /// The report the cgroup feeds, once known.
    report: Option<Key>,
    /// When the runtime was first found not to know it (`None`: it did).
    unresolved_since: Option<Instant>,
    /// Its own part of the report, as last built.
    spec: Option<ContainerBehaviorReportSpec>,
    /// Node-wide losses when it was first seen (those since are charged
    /// to it too).
    baseline: Option<NodeLosses>,
    /// The time it lived through before this agent recorded it, once
    /// known (it was there when recording began and the report had been
    /// written before).
    unrecorded: Option<Period>,
    /// Its kernel loss counters as last read, and the tick that first saw
    /// them at that value (when the last loss was noticed).
    drops: (u64, Option<String>),
}

/// What became of one container's report at a tick.
enum Outcome {
    /// Written, or nothing new to write.
    Done,
    /// Not a pod container of this node: nothing to write, ever.
    Ignored,
    /// No report ever takes what this cgroup does (host processes, a pod
    /// sandbox, the agent's own pod): stop recording it.
    Unwanted,
    /// The runtime has not named the container yet.
    Unresolved,
    /// No runtime this agent follows knows the container, though each
    /// listed all of its own since it appeared: another node's (several
    /// nodes on one kernel) or an unfollowed runtime's. Never reported.
    Foreign,
    /// Not written, and what that means for the rest of the tick.
    NotWritten(WriteFailure),
}

/// Writes the reports of one node.
pub struct Publisher {
    config: PublisherConfig,
    api: Client,
    workloads: Workloads,
    /// Pods of other nodes, looked up when a peer is one.
    remote: RemotePods,
    pods: Store<Pod>,
    services: Store<Service>,
    metrics: AgentMetrics,
    arch: Arch,
    /// Per cgroup id.
    cgroups: HashMap<u64, Tracked>,
    /// What was last written, to write only changes.
    published: HashMap<Key, ContainerBehaviorReportSpec>,
    /// What each report holds beyond its live cgroups: what this node
    /// wrote before the agent (re)started, and the behavior of the
    /// container's earlier cgroups (a restarted container), so that
    /// neither restart loses anything. Dropped when the pod is gone.
    retained: HashMap<Key, ContainerBehaviorReportSpec>,
    /// The reports written before were read back.
    read_back: bool,
    /// Reports read back that an earlier release named: adopted.
    earlier_names: plan::EarlierNames,
    /// Workload of each pod seen, by pod UID (for pods already deleted).
    pod_workloads: HashMap<String, WorkloadRef>,
    /// Node-wide losses at the previous tick.
    losses: NodeLosses,
    /// Node-wide losses read at this tick.
    tick_losses: NodeLosses,
    /// Each cgroup's kernel loss total at the previous tick: a cgroup
    /// whose total grew is written, even if all its events were lost.
    drops_read: HashMap<u64, u64>,
    /// The last write went through (exits are written early only then;
    /// otherwise at the regular interval, not in a tight retry loop).
    pub api_ok: bool,
    /// What the local workloads' profiles hold: a report they cover holds
    /// only the rest (`None`: every report is whole).
    covering: Option<Guarded>,
    /// Its generation when every report was last looked at.
    covering_seen: u64,
}

impl Publisher {
    /// A publisher writing through `api`, reading pods and services from
    /// the reflector stores.
    pub fn new(
        config: PublisherConfig,
        api: Client,
        pods: Store<Pod>,
        services: Store<Service>,
        metrics: AgentMetrics,
        arch: Arch,
    ) -> Self {
        Publisher {
            config,
            workloads: Workloads::new(api.clone()),
            remote: RemotePods::new(api.clone()),
            api,
            pods,
            services,
            metrics,
            arch,
            cgroups: HashMap::new(),
            published: HashMap::new(),
            retained: HashMap::new(),
            read_back: false,
            earlier_names: plan::EarlierNames::new(),
            pod_workloads: HashMap::new(),
            losses: NodeLosses::default(),
            tick_losses: NodeLosses::default(),
            drops_read: HashMap::new(),
            api_ok: true,
            covering: None,
            covering_seen: 0,
        }
    }

    /// Writes covered reports where the workload's profile holds what its
    /// containers did ([`crate::coverage`]).
    pub fn cover_with(&mut self, profiles: Guarded) {
        self.covering = Some(profiles);
    }

    /// `spec` as written, given what is known of its workload's profile
    /// ([`coverage::written`]).
    fn covered(&self, spec: ContainerBehaviorReportSpec, key: &Key) -> ContainerBehaviorReportSpec {
        let subject = &spec.subject;
        let known = match (
            &self.covering,
            &subject.namespace,
            &subject.workload,
            &subject.container,
        ) {
            (Some(profiles), Some(namespace), Some(workload), Some(_)) => {
                profiles.covering_known(namespace, workload)
            }
            _ => None,
        };
        let profile = match &known {
            None => Profile::NotKnownYet,
            Some(None) => Profile::None,
            Some(Some(covering)) => Profile::Holds {
                coverage: &covering.coverage,
                settled: covering.settled,
                base: spec
                    .subject
                    .container
                    .as_ref()
                    .and_then(|c| covering.bases.get(c))
                    .map(|b| &**b),
            },
        };
        // As written last, or before the agent restarted.
        let earlier = self.published.get(key).or_else(|| self.retained.get(key));
        coverage::written(spec, profile, earlier)
    }

    /// Reads back the reports this node wrote earlier, once.
    async fn read_back(&mut self) -> bool {
        if self.read_back {
            return true;
        }
        let api = Api::<ContainerBehaviorReport>::all(self.api.clone());
        let selector = format!("{}={}", labels::NODE, label_value(&self.config.node));
        let listed = tokio::time::timeout(
            API_TIMEOUT,
            api.list(&ListParams::default().labels(&selector)),
        )
        .await
        .unwrap_or_else(|_| Err(kube::Error::Service("timed out".into())));
        match listed {
            Ok(list) => {
                let earlier: HashMap<Key, ContainerBehaviorReportSpec> = list
                    .items
                    .into_iter()
                    .filter(|r| {
                        r.metadata
                            .labels
                            .as_ref()
                            .is_none_or(|l| !l.contains_key(labels::ARCHIVE))
                    })
                    .filter_map(|r| Some(((r.metadata.namespace?, r.metadata.name?), r.spec)))
                    .collect();
                self.earlier_names =
                    plan::earlier_names(earlier.iter().map(|((namespace, name), spec)| {
                        (namespace.as_str(), name.as_str(), spec)
                    }));
                if !self.earlier_names.is_empty() {
                    info!(
                        reports = self.earlier_names.len(),
                        "reports an earlier release named are written on under their names"
                    );
                }
                info!(
                    reports = earlier.len(),
                    "read back this node's earlier reports"
                );
                self.retained = earlier;
                self.read_back = true;
                true
            }
            Err(error) => {
                self.metrics.api_errors.inc();
                warn!(%error, "cannot read this node's reports yet (API server unreachable?); recording goes on, writing waits");
                false
            }
        }
    }

    /// Whether a container exited long enough ago to be written now.
    pub fn exit_due(&self, session: &Session) -> bool {
        self.api_ok
            && session
                .captured()
                .removed
                .values()
                .any(|at| at.elapsed() >= EXIT_GRACE)
    }

    /// Writes the report of every changed container (`exits_only`: only
    /// containers whose cgroup went away a moment ago; `all`: every
    /// container seen, changed or not).
    pub async fn publish(
        &mut self,
        session: &mut Session,
        hierarchy: &Hierarchy,
        exits_only: bool,
        mut all: bool,
    ) {
        let counts = session.probes.kernel_counts();
        let losses = session.node_losses();
        self.metrics.set_node_losses(&losses);
        self.metrics
            .out_of_view_cgroups
            .set(i64::try_from(session.cgroups_out_of_view()).unwrap_or(i64::MAX));
        // A container of one of this node's pods is never another node's.
        session.containers.set_local_pods(
            self.pods
                .state()
                .iter()
                .filter_map(|pod| pod.metadata.uid.clone()),
        );
        if losses != self.losses && !exits_only {
            // Every container recorded meanwhile may have lost something.
            warn!(
                lost = ?losses.since(&self.losses),
                "losses no cgroup can be charged with: every report of this node says so (stats.nodeLosses)"
            );
            all = true;
        }
        // A profile that covers reports came, went, or changed what it
        // holds: every report may be written differently.
        if let Some(covering) = &self.covering
            && !exits_only
        {
            let generation = covering.covering_generation();
            if generation != self.covering_seen {
                self.covering_seen = generation;
                all = true;
            }
        }
        self.tick_losses = losses.clone();
        let drops_read: HashMap<u64, u64> = counts
            .drops
            .iter()
            .map(|(id, d)| (*id, d.total()))
            .collect();
        self.metrics
            .drops
            .set(i64::try_from(drops_read.values().sum::<u64>()).unwrap_or(i64::MAX));
        {
            let mut captured = session.captured();
            for (id, total) in &drops_read {
                if self.drops_read.get(id) != Some(total) {
                    captured.changed.insert(*id);
                }
            }
        }
        self.drops_read = drops_read;
        if !self.read_back().await {
            self.api_ok = false;
            return;
        }
        // Candidates leave the changed set now: events drained while this
        // tick awaits the API mark them changed again.
        let (candidates, removed) = {
            let mut captured = session.captured();
            let candidates: Vec<u64> = if exits_only {
                captured
                    .removed
                    .iter()
                    .filter(|(_, at)| at.elapsed() >= EXIT_GRACE)
                    .map(|(id, _)| *id)
                    .collect()
            } else {
                let mut ids: HashSet<u64> = captured
                    .changed
                    .iter()
                    .chain(captured.removed.keys())
                    .copied()
                    .collect();
                if all {
                    ids.extend(captured.aggregator.cgroups.keys().copied());
                }
                ids.into_iter().collect()
            };
            for id in &candidates {
                captured.changed.remove(id);
            }
            (candidates, captured.removed.clone())
        };
        let paths = session.paths(hierarchy, &candidates);
        let index = PeerIndex::build(
            self.pods.state(),
            self.services.state(),
            &self.config.node,
            crate::cluster::node_addresses::read(),
        );
        self.remote.new_tick();
        let clock = Clock::now();
        for (n, &id) in candidates.iter().enumerate() {
            let gone = removed.get(&id).copied();
            let outcome = match paths.get(&id) {
                Some(path) => {
                    let behavior = session.behavior_of(id, &counts);
                    self.publish_one(id, path, behavior, gone.is_some(), session, &index, &clock)
                        .await
                }
                None => {
                    let events = session.events_of(id);
                    if events > 0 {
                        self.metrics.lost_cgroup("path_unknown");
                        warn!(
                            cgroup_id = id,
                            events,
                            "cgroup path unknown after a rescan (removed before it was named): its behavior cannot be attributed to a container"
                        );
                    }
                    Outcome::Ignored
                }
            };
            match outcome {
                Outcome::Done if gone.is_some() => self.forget(id, session),
                Outcome::Done => {}
                Outcome::Unwanted => {
                    let path = paths.get(&id).map_or("", String::as_str);
                    match session.stop_recording(hierarchy, id, path) {
                        Ok(()) => debug!(
                            cgroup = path,
                            "no report takes this cgroup: not recorded any more"
                        ),
                        Err(error) => {
                            debug!(cgroup = path, %error, "no report takes this cgroup (gone already?)")
                        }
                    }
                    self.metrics.cgroups_not_recorded.inc();
                }
                Outcome::Foreign => {
                    let path = paths.get(&id).map_or("", String::as_str);
                    if self.metrics.foreign_cgroups.get() == 0 {
                        // Once, and naming none: they are another agent's.
                        info!(
                            "containers no followed runtime knows, of no pod of this node (another node's on this kernel?), are left out and not recorded: counted in imprint_agent_foreign_cgroups_total"
                        );
                    }
                    debug!(
                        cgroup = path,
                        "no followed runtime knows this container (another node's?): not recorded any more"
                    );
                    if let Err(error) = session.stop_recording(hierarchy, id, path) {
                        debug!(cgroup = path, %error, "could not stop recording (gone already?)");
                    }
                    self.cgroups.remove(&id);
                    self.metrics.foreign_cgroups.inc();
                }
                Outcome::Ignored => {
                    session.captured().aggregator.cgroups.remove(&id);
                    if gone.is_some() {
                        self.forget(id, session);
                    }
                }
                Outcome::Unresolved => {
                    if gone.is_some_and(|at| at.elapsed() > UNRESOLVED_GIVE_UP) {
                        let events = session.events_of(id);
                        self.metrics.lost_cgroup("never_named");
                        warn!(cgroup_id = id, path = ?paths.get(&id), events, "container exited and the runtime never named it: its behavior cannot be attributed to a pod");
                        self.forget(id, session);
                    } else {
                        session.captured().changed.insert(id);
                    }
                }
                Outcome::NotWritten(WriteFailure::Refused) => {
                    session.captured().changed.insert(id);
                }
                Outcome::NotWritten(WriteFailure::NamespaceGone) => {
                    // What it did goes with its namespace.
                    if gone.is_some() {
                        self.forget(id, session);
                    }
                }
                Outcome::NotWritten(WriteFailure::Unreachable) => {
                    // The API server is unreachable or failing: try the
                    // rest at the next tick rather than time out on each.
                    session.captured().changed.extend(&candidates[n..]);
                    self.api_ok = false;
                    self.count_containers();
                    return;
                }
            }
        }
        self.drop_gone_pods();
        self.api_ok = true;
        self.losses = losses;
        self.count_containers();
    }

    fn count_containers(&self) {
        let reports = self.cgroups.values().filter(|t| t.report.is_some()).count();
        self.metrics.containers.set(reports as i64);
        let covered = self
            .published
            .values()
            .filter(|spec| spec.covered.is_some())
            .count();
        self.metrics.covered_reports.set(covered as i64);
    }

    /// Drops everything kept about an exited cgroup once it was written;
    /// its part of the report is retained for the report's later writes.
    fn forget(&mut self, id: u64, session: &mut Session) {
        session.forget(id);
        let Some(tracked) = self.cgroups.remove(&id) else {
            return;
        };
        if let (Some(key), Some(spec)) = (tracked.report, tracked.spec) {
            let retained = self.retained.entry(key).or_insert_with(|| spec.clone());
            retained.absorb(&spec);
            super::bound(retained, super::MAX_REPORT_BYTES);
        }
    }

    /// Forgets the reports of pods that are gone (no live cgroup feeds
    /// them and the pod is not in the store).
    fn drop_gone_pods(&mut self) {
        let live: HashSet<&Key> = self
            .cgroups
            .values()
            .filter_map(|t| t.report.as_ref())
            .collect();
        let gone: Vec<Key> = self
            .published
            .iter()
            .chain(self.retained.iter())
            .filter(|(key, _)| !live.contains(key))
            .filter(|((namespace, _), spec)| {
                spec.subject.pod.as_ref().is_none_or(|pod| {
                    self.pods
                        .get(&ObjectRef::new(pod).within(namespace))
                        .is_none()
                })
            })
            .map(|(key, _)| key.clone())
            .collect();
        self.earlier_names.retain(|(namespace, _, _), (name, _)| {
            !gone.contains(&(namespace.clone(), name.clone()))
        });
        for key in gone {
            self.published.remove(&key);
            self.retained.remove(&key);
        }
    }

    /// The pod of `target`: from the store, else asked for (the store may
    /// lag when a watch was re-established after the API server came
    /// back). `Err` when the API server could not answer.
    async fn pod(&self, target: &Target) -> Result<Option<Arc<Pod>>, ()> {
        let reference = ObjectRef::new(&target.pod).within(&target.namespace);
        if let Some(pod) = self.pods.get(&reference) {
            return Ok(Some(pod));
        }
        let api = Api::<Pod>::namespaced(self.api.clone(), &target.namespace);
        match tokio::time::timeout(API_TIMEOUT, api.get_opt(&target.pod)).await {
            Ok(Ok(found)) => Ok(found.map(Arc::new)),
            _ => Err(()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish_one(
        &mut self,
        id: u64,
        path: &str,
        behavior: Option<crate::capture::aggregate::Behavior>,
        exiting: bool,
        session: &Session,
        index: &PeerIndex,
        clock: &Clock,
    ) -> Outcome {
        let holder = runtime::classify(path, &session.containers);
        let mut target =
            match plan::target(&holder, &self.config.filter, self.config.own_pod.as_ref()) {
                Ok(target) => target,
                Err(Skip::Unresolved) => {
                    let tracked = self.cgroups.entry(id).or_default();
                    let since = match tracked.unresolved_since {
                        Some(since) => since,
                        None => {
                            self.metrics.resolution_failures.inc();
                            debug!(cgroup = %path, "container not (yet) known to the runtime");
                            *tracked.unresolved_since.insert(Instant::now())
                        }
                    };
                    if let Holder::Container(identity, None) = &holder
                        && session.containers.foreign(
                            &identity.container_id,
                            identity.pod_uid.as_deref(),
                            since,
                        )
                    {
                        return Outcome::Foreign;
                    }
                    return Outcome::Unresolved;
                }
                Err(Skip::Host | Skip::NotAPodContainer | Skip::OwnPod) => {
                    return Outcome::Unwanted;
                }
                Err(Skip::OtherNode) => return Outcome::Ignored,
            };
        plan::adopt_earlier_name(&mut target, &self.earlier_names);
        let Ok(pod) = self.pod(&target).await else {
            self.metrics.api_errors.inc();
            return Outcome::NotWritten(WriteFailure::Unreachable);
        };
        if plan::on_other_node(pod.as_deref(), &self.config.node) {
            return Outcome::Ignored;
        }
        let workload = match (&pod, &target.pod_uid) {
            (Some(pod), uid) => {
                let Some(workload) = self.workloads.of_pod(pod).await else {
                    // The owner could not be looked up: the API server is
                    // unreachable. Written at a later tick.
                    self.metrics.api_errors.inc();
                    warn!(
                        namespace = target.namespace,
                        pod = target.pod,
                        "owning workload not known yet (API server unreachable?); report kept, retried next interval"
                    );
                    return Outcome::NotWritten(WriteFailure::Unreachable);
                };
                if let Some(uid) = uid {
                    self.pod_workloads.insert(uid.clone(), workload.clone());
                }
                workload
            }
            (None, uid) => plan::workload_of_gone_pod(
                &target.pod,
                uid.as_ref().and_then(|u| self.pod_workloads.get(u)),
            ),
        };
        let Some(behavior) = behavior.filter(|b| !b.is_empty() || b.lost_anything()) else {
            return Outcome::Done;
        };
        let mut spec = plan::spec(
            SpecInput {
                target: &target,
                path,
                holder: &holder,
                node: &self.config.node,
                workload,
                pod: pod.as_deref(),
                behavior: &behavior,
                arch: self.arch,
            },
            clock,
        );
        index
            .resolve(&mut spec.network, &self.workloads, &self.remote)
            .await;
        let key = (target.namespace.clone(), target.name.clone());
        let preexisting = session.preexisting(id);
        let unrecorded = match (preexisting, self.retained.get(&key)) {
            (true, Some(earlier)) => earlier.window.last_seen.clone().map(|from| Period {
                from,
                to: clock.rfc3339(session.started_ns),
            }),
            _ => None,
        };
        let previous_tick = self.losses.clone();
        let tracked = self.cgroups.entry(id).or_default();
        // A cgroup there before recording began may have lost anything
        // since; a later one, what was lost since the tick before it.
        let baseline = tracked
            .baseline
            .get_or_insert_with(|| {
                if preexisting {
                    NodeLosses::default()
                } else {
                    previous_tick
                }
            })
            .clone();
        session.annotate(&mut spec, &self.tick_losses, &baseline);
        let lost = spec.stats.drops.total;
        if lost > tracked.drops.0 {
            tracked.drops = (lost, Some(clock.rfc3339(crate::report::boot_ns())));
        }
        spec.stats.drops.last_at = tracked.drops.1.clone().filter(|_| lost > 0);
        spec.stats.start_observed =
            plan::start_observed(path, spec.subject.cgroup.as_deref(), preexisting);
        if tracked.unrecorded.is_none() {
            tracked.unrecorded = unrecorded;
        }
        spec.stats.unrecorded = tracked.unrecorded.iter().cloned().collect();
        tracked.report = Some(key.clone());
        tracked.spec = Some(spec.clone());
        // The report holds every cgroup of the container (a restarted
        // container's earlier ones, children it made) and what was written
        // before the agent restarted.
        let others = self
            .cgroups
            .iter()
            .filter(|(other, t)| **other != id && t.report.as_ref() == Some(&key))
            .filter_map(|(_, t)| t.spec.as_ref());
        let spec = plan::compose(spec, others, self.retained.get(&key));
        let spec = self.covered(spec, &key);
        let spec = match plan::decide(spec, self.published.get(&key), exiting) {
            Decision::Unchanged => {
                self.metrics.write("unchanged");
                return Outcome::Done;
            }
            Decision::Create(spec) | Decision::Update(spec) => spec,
        };
        let object = report_object(&target.name, spec.clone(), target.pod_uid.as_deref());
        let api = Api::<ContainerBehaviorReport>::namespaced(self.api.clone(), &target.namespace);
        match api
            .patch(
                &target.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
        {
            Ok(_) => {
                self.metrics.write("applied");
                debug!(
                    namespace = target.namespace,
                    name = target.name,
                    "report written"
                );
                self.published.insert(key, spec);
                Outcome::Done
            }
            Err(error) => {
                self.metrics.write("failed");
                self.metrics.api_errors.inc();
                let failure = plan::write_failure(&error);
                match failure {
                    WriteFailure::Unreachable => {
                        warn!(%error, namespace = target.namespace, name = target.name, "report not written (kept, retried next interval)");
                    }
                    WriteFailure::NamespaceGone => {
                        debug!(%error, namespace = target.namespace, name = target.name, "report not written: its namespace is being deleted");
                    }
                    WriteFailure::Refused => {
                        warn!(%error, namespace = target.namespace, name = target.name, "report refused (kept, tried again next interval; the others go on)");
                    }
                }
                Outcome::NotWritten(failure)
            }
        }
    }
}
