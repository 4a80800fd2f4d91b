//! `imprint agent`: the node agent. A recording [`Session`] of every
//! cgroup of its node plus a [`Publisher`] that keeps one
//! ContainerBehaviorReport per pod container up to date through
//! server-side apply.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::watcher;
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tracing::{debug, info, warn};

use crate::cgroups::Hierarchy;
use crate::cluster::guarded::Guarded;
use crate::cluster::reflect;
use crate::detect::shared::SharedDetector;
use crate::detect::{Detector, DetectorConfig};
use crate::metrics::{self, AgentMetrics};
use crate::names::Arch;
use crate::pipeline::drain::Observer;
use crate::pipeline::own_cgroup::OwnCgroup;
use crate::pipeline::placement::HostResolver;
use crate::pipeline::{RecordingOptions, Scope, Session};
use crate::probes::ProcessTable;
use crate::publish::alerts::{self, AlertOutputs};
use crate::publish::publisher::{Publisher, PublisherConfig};
use crate::runtime::Containers;
use crate::task::Stop;

/// How the node agent runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// This node's name (from the downward API in a cluster).
    pub node: String,
    /// How often changed reports are written.
    pub interval: Duration,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// The agent's own pod (namespace, name), never reported.
    pub own_pod: Option<(String, String)>,
    /// The hooks, the runtime, the filter.
    pub recording: RecordingOptions,
    /// Detection (`None`: off): rules, limits, Alertmanager.
    pub detection: Option<DetectionOptions>,
}

/// How the agent detects and where its alerts go besides standard output,
/// Events and metrics.
#[derive(Clone, Debug, Default)]
pub struct DetectionOptions {
    /// Rules, cooldown, rate, API server addresses.
    pub config: DetectorConfig,
    /// Alertmanager, if alerts also go there.
    pub alertmanager: Option<crate::publish::alertmanager::Alertmanager>,
}

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

    let hierarchy = Hierarchy::find(options.recording.cgroup_root.as_deref())?;
    hierarchy.remove_stale();
    // Like `record --duration`: on a host, the agent's own syscalls land in
    // a cgroup the probes ignore. In a pod (--cgroup-root given) it stays in
    // the pod's cgroup, under the pod's limits; its pod is filtered by name.
    let own = if options.recording.cgroup_root.is_some() {
        None
    } else {
        OwnCgroup::enter(&hierarchy, "agent")
            .inspect_err(|error| debug!(%error, "recording the agent's own cgroup too"))
            .ok()
    };
    let ignore = own.iter().map(OwnCgroup::ignored).collect();
    let result = record_and_publish(
        &options,
        client,
        &hierarchy,
        ignore,
        agent_metrics,
        &ready,
        &mut stop,
    )
    .await;
    ready.store(false, Ordering::Relaxed);
    if let Some(own) = own {
        own.leave(&hierarchy);
    }
    result
}

async fn record_and_publish(
    options: &AgentOptions,
    client: Client,
    hierarchy: &Hierarchy,
    ignore: Vec<(std::path::PathBuf, u64)>,
    metrics: AgentMetrics,
    ready: &std::sync::atomic::AtomicBool,
    stop: &mut Stop,
) -> Result<()> {
    // The profiles of the node's workloads: what they hold covers reports,
    // and guarding ones are detection's baselines. Their workloads are
    // looked at again when a pod changes.
    let guarded = Guarded::default();
    let pods_changed = guarded.pods_changed();
    // Only this node's pods: a cluster's pods on every node would cost
    // every agent memory in proportion to the cluster (peers elsewhere are
    // looked up by address when a report names them).
    let (pods, _pod_watch) = reflect(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={}", options.node)),
        move |_| pods_changed.notify_one(),
    );
    let gauges = metrics.clone();
    let containers = Containers::default();
    let mut recording = options.recording.clone();
    let processes = ProcessTable::default();
    recording.track_processes = options.detection.is_some().then(|| processes.clone());
    let mut detection = None;
    let _follows = guarded.follow(client.clone(), pods.clone());
    let observer: Observer = match &options.detection {
        None => {
            let counted = metrics.clone();
            Box::new(move |event| counted.event(event.kind()))
        }
        Some(detect) => {
            let resolver = HostResolver::new(
                hierarchy,
                &containers,
                options.recording.filter.clone(),
                options.own_pod.clone(),
                Box::new(guarded.clone()),
            )
            .on_node(options.node.clone());
            let (sender, outputs) = alerts::start(AlertOutputs {
                client: client.clone(),
                node: options.node.clone(),
                metrics: metrics.clone(),
                alertmanager: detect.alertmanager.clone(),
                cooldown: detect.config.limits.cooldown,
            });
            let mut detector = Detector::new(detect.config.clone(), Box::new(resolver));
            detector.set_processes(Box::new(processes));
            let detector = SharedDetector::new(detector, sender);
            detection = Some((outputs, detector.summarize(), detector.clone()));
            let counted = metrics.clone();
            Box::new(move |event| {
                counted.event(event.kind());
                detector.observe(event);
            })
        }
    };
    let mut session = Session::start_naming(
        &recording,
        hierarchy,
        Scope::All(ignore),
        Some(observer),
        containers,
    )?;
    if detection.is_some() {
        info!("detecting: built-in rules everywhere, guarding profiles where they guard");
    }
    for missing in &session.probes.unavailable {
        warn!(hook = missing.hook, lost = missing.lost, error = %missing.error, "hook unavailable");
    }
    if session.runtime_sockets.is_empty() {
        warn!(
            "no container runtime socket found: containers cannot be named, no reports will be written"
        );
    }
    for socket in &session.runtime_sockets {
        info!(socket = %socket.display(), "resolving containers through the runtime");
    }
    let (services, _service_watch) = reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        |_| {},
    );
    let mut publisher = Publisher::new(
        PublisherConfig {
            node: options.node.clone(),
            filter: options.recording.filter.clone(),
            own_pod: options.own_pod.clone(),
        },
        client,
        pods,
        services,
        metrics,
        Arch::native().context("unsupported architecture")?,
    );
    publisher.cover_with(guarded);
    ready.store(true, Ordering::Relaxed);
    info!(node = %options.node, interval = ?options.interval, "node agent recording");

    let mut publish_tick = tokio::time::interval(options.interval);
    let mut exit_tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = publish_tick.tick() => {
                if let Some((.., detector)) = &detection {
                    let guarded = {
                        let mut detector = detector.lock();
                        detector.refresh(std::time::Instant::now());
                        detector.guarded_containers()
                    };
                    gauges.guarded_containers.set(guarded as i64);
                }
                publisher.publish(&mut session, hierarchy, false, false).await
            }
            _ = exit_tick.tick() => {
                if publisher.exit_due(&session) {
                    publisher.publish(&mut session, hierarchy, true, false).await;
                }
            }
            _ = stop.requested() => {
                info!("stopping: writing every report once more");
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    session.flush().await;
    publisher
        .publish(&mut session, hierarchy, false, true)
        .await;
    session.report_degradation();
    drop(detection);
    Ok(())
}
