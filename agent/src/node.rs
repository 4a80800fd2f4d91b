//! `imprint agent`: the node agent. Records every cgroup of its node,
//! resolves containers to pods, and keeps one ContainerBehaviorReport per
//! pod container up to date through server-side apply.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use futures::StreamExt;
use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec, WorkloadRef};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tracing::{debug, info, warn};

use crate::capture::aggregate::Aggregator;
use crate::capture::decode::{Event, decode};
use crate::cgroups::{Hierarchy, IMPRINT_PARENT};
use crate::metrics::{self, AgentMetrics};
use crate::names::Arch;
use crate::probes::{CapabilityHook, ProbeConfig, Probes};
use crate::publish::peers::PeerIndex;
use crate::publish::workload::Workloads;
use crate::publish::{self, FIELD_MANAGER, MAX_REPORT_BYTES, labels};
use crate::record::{AbortOnDrop, Stop, watch};
use crate::report::{self, Clock};
use crate::runtime::containerd::{self, Containers};
use crate::runtime::{self as resolver, Filter, Holder};

/// How the node agent runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// This node's name (from the downward API in a cluster).
    pub node: String,
    /// How often changed reports are written.
    pub interval: Duration,
    /// containerd socket (`None`: the first default socket that exists).
    pub runtime_socket: Option<PathBuf>,
    /// Which pods get reports.
    pub filter: Filter,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Which hook sees capability checks.
    pub capability_hook: CapabilityHook,
    /// The agent's own pod (namespace, name), never reported.
    pub own_pod: Option<(String, String)>,
    /// Root of the host's cgroup v2 hierarchy (`None`: the mounted one).
    pub cgroup_root: Option<PathBuf>,
    /// Which API names containers.
    pub runtime_api: resolver::RuntimeApi,
}

/// Namespace and name of a report.
type Key = (String, String);

/// A container that exited is written once more this long after its
/// cgroup went (late events drained first).
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// Longest wait for one API call: a hung API server must not stall the
/// draining of kernel events for long.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// An exited container the runtime never named is given up after this.
const UNRESOLVED_GIVE_UP: Duration = Duration::from_secs(120);

/// Runs the node agent until SIGINT or SIGTERM, then writes every report
/// once more.
pub async fn run(options: AgentOptions) -> Result<()> {
    let mut stop = Stop::listen()?;
    let client = Client::try_default()
        .await
        .context("no Kubernetes API configuration (in-cluster service account or KUBECONFIG)")?;

    let agent_metrics = AgentMetrics::default();
    let mut registry = Registry::default();
    agent_metrics.register(&mut registry);
    let (ready, _server) = metrics::start(options.listen, registry);

    let hierarchy = Hierarchy::find(options.cgroup_root.as_deref())?;
    hierarchy.remove_stale();
    // Like `record --duration`: on a host, the agent's own syscalls land in
    // a cgroup the probes ignore. In a pod (--cgroup-root given) it stays in
    // the pod's cgroup, under the pod's limits; its pod is filtered by name.
    let own = format!("{IMPRINT_PARENT}/agent-{}", std::process::id());
    let home = Hierarchy::path_of_process("self").ok();
    let ignore = if options.cgroup_root.is_some() {
        Vec::new()
    } else {
        match hierarchy.create(&own).and_then(|dir| {
            hierarchy.join(&own, 0)?;
            Ok((dir, hierarchy.id_of(&own)?))
        }) {
            Ok(ignored) => vec![ignored],
            Err(error) => {
                debug!(%error, "recording the agent's own cgroup too");
                Vec::new()
            }
        }
    };
    let own_cgroup = !ignore.is_empty();
    let result = run_in(
        &options,
        client,
        &hierarchy,
        ignore,
        agent_metrics,
        ready,
        &mut stop,
    )
    .await;
    if own_cgroup {
        hierarchy.leave(home.as_deref(), &own);
    }
    result
}

async fn run_in(
    options: &AgentOptions,
    client: Client,
    hierarchy: &Hierarchy,
    ignore: Vec<(PathBuf, u64)>,
    metrics: AgentMetrics,
    ready: Arc<AtomicBool>,
    stop: &mut Stop,
) -> Result<()> {
    let mut probes = Probes::load(
        &ProbeConfig {
            record_all: true,
            capability_hook: options.capability_hook,
            ignore,
        },
        hierarchy.root(),
    )?;
    for missing in &probes.unavailable {
        warn!(hook = missing.hook, lost = missing.lost, error = %missing.error, "hook unavailable");
    }
    crate::probes::release_load_memory();
    let containers = Containers::default();
    let socket = options
        .runtime_socket
        .clone()
        .or_else(containerd::default_socket);
    match &socket {
        Some(socket) => {
            info!(socket = %socket.display(), "resolving containers through containerd")
        }
        None => warn!(
            "no containerd socket found: containers cannot be named, no reports will be written"
        ),
    }
    let _watcher = socket.map(|socket| {
        AbortOnDrop(tokio::spawn(resolver::follow(
            socket,
            options.runtime_api,
            containers.clone(),
        )))
    });
    let (pods, _pod_watch) = reflect::<Pod>(client.clone());
    let (services, _service_watch) = reflect::<Service>(client.clone());

    let mut events = watch(probes.take_events()?)?;
    let mut node = NodeState {
        options: options.clone(),
        api: client.clone(),
        workloads: Workloads::new(client),
        pods,
        services,
        containers,
        metrics,
        known: hierarchy.scan(100_000),
        aggregator: Aggregator::default(),
        dirty: HashSet::new(),
        exited: HashMap::new(),
        reports: HashMap::new(),
        published: HashMap::new(),
        base: None,
        pod_workloads: HashMap::new(),
        unresolved_warned: HashSet::new(),
        api_ok: true,
        arch: Arch::native().context("unsupported architecture")?,
    };
    ready.store(true, Ordering::Relaxed);
    info!(node = %options.node, interval = ?options.interval, "node agent recording");

    let mut publish_tick = tokio::time::interval(options.interval);
    let mut exit_tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            guard = events.readable_mut() => {
                let mut guard = guard?;
                node.drain(guard.get_inner_mut());
                guard.clear_ready();
            }
            _ = publish_tick.tick() => node.publish(&probes, hierarchy, false).await,
            _ = exit_tick.tick() => {
                if node.api_ok && node.exited.values().any(|at| at.elapsed() >= EXIT_GRACE) {
                    node.publish(&probes, hierarchy, true).await;
                }
            }
            _ = stop.requested() => {
                info!("stopping: writing every report once more");
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    node.drain(events.get_mut());
    node.dirty.extend(node.aggregator.cgroups.keys().copied());
    node.publish(&probes, hierarchy, false).await;
    ready.store(false, Ordering::Relaxed);
    crate::record::report_degradation(&probes, node.aggregator.decode_errors);
    Ok(())
}

/// A reflector store of every `K` in the cluster, kept current by a task
/// that ends when the returned guard is dropped.
fn reflect<K>(client: Client) -> (Store<K>, AbortOnDrop)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            if let Err(error) = item {
                debug!(%error, kind = %K::kind(&()), "watch error (retrying)");
            }
        }
    });
    (reader, AbortOnDrop(task))
}

/// Everything the node agent keeps between ticks.
struct NodeState {
    options: AgentOptions,
    api: Client,
    workloads: Workloads,
    pods: Store<Pod>,
    services: Store<Service>,
    containers: Containers,
    metrics: AgentMetrics,
    /// Cgroup paths by id.
    known: HashMap<u64, String>,
    aggregator: Aggregator,
    /// Cgroups with events since they were last written.
    dirty: HashSet<u64>,
    /// Cgroups removed (container exited), and when.
    exited: HashMap<u64, Instant>,
    /// Which report each container cgroup feeds.
    reports: HashMap<u64, Key>,
    /// What was last written, to write only changes.
    published: HashMap<Key, ContainerBehaviorReportSpec>,
    /// Reports this node wrote before the agent (re)started: merged into
    /// what it sees now, so a restart loses nothing. `None` until read.
    base: Option<HashMap<Key, ContainerBehaviorReportSpec>>,
    /// Workload of each pod seen, by pod UID (for pods already deleted).
    pod_workloads: HashMap<String, WorkloadRef>,
    /// Unresolved cgroups already warned about.
    unresolved_warned: HashSet<u64>,
    /// The last write went through (exits are written early only then;
    /// otherwise at the regular interval, not in a tight retry loop).
    api_ok: bool,
    arch: Arch,
}

impl NodeState {
    /// Reads every pending event into the aggregator.
    fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(item) = ring.next() {
            match decode(&item) {
                Ok(event) => {
                    self.metrics.event(event.kind());
                    let id = event.header().cgroup_id;
                    match &event {
                        Event::CgroupRemoved { .. } => {
                            self.exited.insert(id, Instant::now());
                        }
                        Event::CgroupMade { path, .. } => {
                            self.known.insert(id, path.clone());
                        }
                        _ => {
                            self.dirty.insert(id);
                        }
                    }
                    self.aggregator.add(&event);
                }
                Err(error) => {
                    self.aggregator.decode_errors += 1;
                    warn!(%error, "undecodable event");
                }
            }
        }
    }

    /// Reads back the reports this node wrote earlier, once.
    async fn load_base(&mut self) -> bool {
        if self.base.is_some() {
            return true;
        }
        let api = Api::<ContainerBehaviorReport>::all(self.api.clone());
        let selector = format!(
            "{}={}",
            labels::NODE,
            publish::label_value(&self.options.node)
        );
        let listed = tokio::time::timeout(
            API_TIMEOUT,
            api.list(&ListParams::default().labels(&selector)),
        )
        .await
        .unwrap_or_else(|_| Err(kube::Error::Service("timed out".into())));
        match listed {
            Ok(list) => {
                let base: HashMap<Key, ContainerBehaviorReportSpec> = list
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
                info!(
                    reports = base.len(),
                    "read back this node's earlier reports"
                );
                self.base = Some(base);
                true
            }
            Err(error) => {
                self.metrics.api_errors.inc();
                warn!(%error, "cannot read this node's reports yet (API server unreachable?); recording goes on, writing waits");
                false
            }
        }
    }

    /// Writes the report of every changed container (`exits_only`: only
    /// containers whose cgroup went away a moment ago).
    async fn publish(&mut self, probes: &Probes, hierarchy: &Hierarchy, exits_only: bool) {
        let drops = probes.drops();
        self.metrics.drops.set(
            drops
                .values()
                .map(|d| (d.ringbuf + d.map_full + d.truncated + d.read_fails) as i64)
                .sum::<i64>(),
        );
        if !self.load_base().await {
            self.api_ok = false;
            return;
        }
        let candidates: Vec<u64> = if exits_only {
            self.exited
                .iter()
                .filter(|(_, at)| at.elapsed() >= EXIT_GRACE)
                .map(|(id, _)| *id)
                .collect()
        } else {
            self.dirty
                .iter()
                .chain(self.exited.keys())
                .copied()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect()
        };
        if candidates.iter().any(|id| !self.known.contains_key(id)) {
            self.known.extend(hierarchy.scan(100_000));
        }
        let index = PeerIndex::build(self.pods.state(), self.services.state());
        let clock = Clock::now();
        for id in candidates {
            let gone = self.exited.get(&id).copied();
            match self.publish_one(id, &drops, &index, &clock).await {
                Outcome::Written | Outcome::Unchanged => {
                    self.dirty.remove(&id);
                    if gone.is_some() {
                        self.forget(id);
                    }
                }
                Outcome::NotAPod => {
                    self.dirty.remove(&id);
                    self.aggregator.cgroups.remove(&id);
                    if gone.is_some() {
                        self.forget(id);
                    }
                }
                Outcome::Unresolved => {
                    if gone.is_some_and(|at| at.elapsed() > UNRESOLVED_GIVE_UP) {
                        warn!(cgroup_id = id, path = ?self.known.get(&id), "container exited and the runtime never named it: its behaviour cannot be attributed to a pod");
                        self.forget(id);
                    }
                }
                Outcome::Failed => {
                    // The API server is unreachable or refusing: try the
                    // rest at the next tick rather than time out on each.
                    self.api_ok = false;
                    self.metrics.containers.set(self.reports.len() as i64);
                    return;
                }
            }
        }
        self.api_ok = true;
        self.metrics.containers.set(self.reports.len() as i64);
    }

    /// Drops everything kept about an exited cgroup once it was written.
    fn forget(&mut self, id: u64) {
        self.exited.remove(&id);
        self.dirty.remove(&id);
        self.aggregator.cgroups.remove(&id);
        self.unresolved_warned.remove(&id);
        self.known.remove(&id);
        if let Some(key) = self.reports.remove(&id)
            && !self.reports.values().any(|k| *k == key)
        {
            self.published.remove(&key);
            if let Some(base) = self.base.as_mut() {
                base.remove(&key);
            }
        }
    }

    async fn publish_one(
        &mut self,
        id: u64,
        drops: &HashMap<u64, imprint_probes::events::DropCounts>,
        index: &PeerIndex,
        clock: &Clock,
    ) -> Outcome {
        let Some(path) = self.known.get(&id).cloned() else {
            return Outcome::NotAPod;
        };
        let holder = resolver::classify(&path, &self.containers);
        let info = match &holder {
            Holder::Host => return Outcome::NotAPod,
            Holder::Container(_, None) => {
                if self.unresolved_warned.insert(id) {
                    self.metrics.resolution_failures.inc();
                    debug!(cgroup = %path, "container not (yet) known to the runtime");
                }
                return Outcome::Unresolved;
            }
            Holder::Container(_, Some(info)) => info.clone(),
        };
        if info.pod.is_none() || !self.options.filter.keeps(&holder) {
            return Outcome::NotAPod;
        }
        let (Some(namespace), Some(pod_name), Some(container)) = (
            info.pod_namespace.clone(),
            info.pod.clone(),
            info.container.clone(),
        ) else {
            return Outcome::NotAPod;
        };
        if self.options.own_pod.as_ref() == Some(&(namespace.clone(), pod_name.clone())) {
            return Outcome::NotAPod;
        }
        let mut pod = self.pods.get(&ObjectRef::new(&pod_name).within(&namespace));
        if pod.is_none() {
            // The store may lag (a watch re-established after the API server
            // came back): ask for the pod before guessing its workload.
            let api = Api::<Pod>::namespaced(self.api.clone(), &namespace);
            match tokio::time::timeout(API_TIMEOUT, api.get_opt(&pod_name)).await {
                Ok(Ok(found)) => pod = found.map(std::sync::Arc::new),
                _ => {
                    self.metrics.api_errors.inc();
                    return Outcome::Failed;
                }
            }
        }
        if let Some(pod) = &pod
            && let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
            && node != self.options.node
        {
            return Outcome::NotAPod;
        }
        let pod_uid = info.pod_uid.clone();
        let workload = match (&pod, &pod_uid) {
            (Some(pod), uid) => {
                let Some(workload) = self.workloads.of_pod(pod).await else {
                    // The owner could not be looked up: the API server is
                    // unreachable. Written at a later tick.
                    self.metrics.api_errors.inc();
                    warn!(
                        namespace,
                        pod = pod_name,
                        "owning workload not known yet (API server unreachable?); report kept, retried next interval"
                    );
                    return Outcome::Failed;
                };
                if let Some(uid) = uid {
                    self.pod_workloads.insert(uid.clone(), workload.clone());
                }
                workload
            }
            (None, Some(uid)) if self.pod_workloads.contains_key(uid) => {
                self.pod_workloads[uid].clone()
            }
            (None, _) => WorkloadRef {
                kind: "Pod".into(),
                name: pod_name.clone(),
            },
        };
        let Some(behaviour) = self.aggregator.cgroups.get(&id) else {
            return Outcome::Unchanged;
        };
        if behaviour.is_empty() {
            return Outcome::Unchanged;
        }
        let mut behaviour = behaviour.clone();
        if let Some(d) = drops.get(&id) {
            behaviour.add_drops(d);
        }
        let mut subject = resolver::subject(&path, &holder, Some(self.options.node.clone()));
        subject.workload = Some(workload);
        if let Some(pod) = &pod {
            let (writable, context) = crate::publish::workload::container_facts(pod, &container);
            subject.writable_mounts = writable;
            subject.security_context = context;
        }
        let name = publish::report_name(&pod_name, &container);
        let mut spec = report::build(&name, subject, &behaviour, self.arch, clock).spec;
        index.resolve(&mut spec.network, &self.workloads).await;
        let key = (namespace.clone(), name.clone());
        if let Some(earlier) = self.base.as_ref().and_then(|b| b.get(&key)) {
            spec.absorb(earlier);
        }
        publish::bound(&mut spec, MAX_REPORT_BYTES);
        self.reports.insert(id, key.clone());
        // Counts alone are written with the next real change, or at exit.
        let exiting = self.exited.contains_key(&id);
        let unchanged = match self.published.get(&key) {
            Some(published) if exiting => *published == spec,
            Some(published) => !publish::behaviour_differs(published, &spec),
            None => false,
        };
        if unchanged {
            self.metrics.write("unchanged");
            return Outcome::Unchanged;
        }
        let object = publish::report_object(&name, spec.clone(), pod_uid.as_deref());
        let api = Api::<ContainerBehaviorReport>::namespaced(self.api.clone(), &namespace);
        match api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
        {
            Ok(_) => {
                self.metrics.write("applied");
                debug!(namespace, name, "report written");
                self.published.insert(key, spec);
                Outcome::Written
            }
            Err(error) => {
                self.metrics.write("failed");
                self.metrics.api_errors.inc();
                warn!(%error, namespace, name, "report not written (kept, retried next interval)");
                Outcome::Failed
            }
        }
    }
}

/// What became of one container's report at a tick.
enum Outcome {
    Written,
    Unchanged,
    /// Host cgroup, sandbox, filtered out or not ours: nothing to write.
    NotAPod,
    /// The runtime has not named the container yet.
    Unresolved,
    /// The API server refused or was unreachable.
    Failed,
}
