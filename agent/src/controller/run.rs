//! `imprint controller`: startup, the leader Lease, and the loop that
//! turns report and profile changes into reconciles ([`super::reconcile`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::StreamExt;
use imprint_crd::profile::BehaviorProfile;
use imprint_crd::report::ContainerBehaviorReport;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::leader::{LeaderLease, Leadership};
use super::network_apply::NetworkPolicies;
use super::network_view::NetworkView;
use super::objects::FIELD_MANAGER;
use super::reconcile::{Context, Controller};
use super::seccomp::{SeccompApi, SeccompProfiles};
use super::store::{ReportEvent, ReportStore, WorkloadKey};

/// Reports per page of the report watcher's lists (50 of the largest, 25
/// MiB of JSON, held at once while a page is parsed).
const REPORT_PAGE: u32 = 50;
use crate::cluster::reflect;
use crate::metrics::{self, ControllerMetrics};
use crate::task::{AbortOnDrop, Stop};

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
    /// Apply derived NetworkPolicies once their profile is Stable.
    pub apply_network_policies: bool,
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
            Some(keep_renewing(lease.clone(), lost_tx))
        }
        None => None,
    };

    let (network, _network_watches) = NetworkView::start(client.clone());
    let (network_policies, _policy_watch) = if options.apply_network_policies {
        let (policies, watch) = NetworkPolicies::start(client.clone());
        (Some(policies), Some(watch))
    } else {
        (None, None)
    };
    let (keys_tx, mut keys) = mpsc::unbounded_channel::<WorkloadKey>();
    let (profiles, _profile_watch) = reflect(
        Api::<BehaviorProfile>::all(client.clone()),
        watcher::Config::default(),
        move |p: &BehaviorProfile| {
            if let Some(namespace) = p.namespace() {
                let _ = keys_tx.send((namespace, p.spec.workload.clone()));
            }
        },
    );
    // Reports are many: kept compact (see `store`), fed by a watcher.
    let (report_events_tx, mut report_events) = mpsc::unbounded_channel();
    let report_api = Api::<ContainerBehaviorReport>::all(client.clone());
    let _report_watch = AbortOnDrop(tokio::spawn(async move {
        // Small pages: a page of the first list is held whole while it is
        // parsed, and reports may be up to 512 KiB each.
        let config = watcher::Config::default().page_size(REPORT_PAGE);
        let stream = watcher(report_api, config).default_backoff();
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if report_events_tx.send(ReportEvent::from(event)).is_err() {
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
        context: Context {
            client: client.clone(),
            stability_window: options.stability_window,
            metrics: controller_metrics,
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: FIELD_MANAGER.into(),
                    instance: Some(options.identity.clone()),
                },
            ),
            seccomp: SeccompProfiles::new(client, options.seccomp_api),
            leadership: Leadership::new(lease.clone()),
            network: Some(network),
            network_policies,
        },
        reports,
        profiles,
    };
    controller.context.metrics.leader.set(1);
    info!("controller running");

    let mut dirty: HashSet<WorkloadKey> = HashSet::new();
    let mut debounce = tokio::time::interval(Duration::from_millis(500));
    let mut resync = tokio::time::interval(options.resync);
    // A leader that could not renew the Lease in time (the API server away,
    // or only unreachable from here) pauses before any standby may take
    // over, and goes on once a renewal goes through.
    let mut acting = true;
    let mut may_act = |context: &Context| {
        let held = context.leadership.may_write();
        if held != acting {
            acting = held;
            context.metrics.leader.set(i64::from(held));
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
                if !dirty.is_empty() && may_act(&controller.context) {
                    let batch: Vec<_> = dirty.drain().collect();
                    controller.reconcile_all(batch).await;
                }
            }
            _ = resync.tick() => {
                dirty.extend(controller.all_keys());
                if may_act(&controller.context) {
                    let context = &mut controller.context;
                    context.seccomp.collect_orphans(&controller.profiles, &context.leadership).await;
                }
            }
            _ = lost.recv() => {
                anyhow::bail!("lost the leader lease to another replica; exiting so that it alone acts");
            }
            _ = stop.requested() => break,
        }
    }
    ready.store(false, Ordering::Relaxed);
    controller.context.metrics.leader.set(0);
    drop(_renewer);
    if let Some(lease) = lease
        && let Err(error) = lease.release().await
    {
        warn!(%error, "lease not released (another replica takes over when it expires)");
    }
    Ok(())
}

/// Renews the Lease in the background; says on `lost` when another
/// replica holds it.
fn keep_renewing(lease: Arc<LeaderLease>, lost: mpsc::Sender<()>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease.renew_every()).await;
            match lease.renew().await {
                Ok(true) => {}
                Ok(false) => {
                    let _ = lost.send(()).await;
                    return;
                }
                Err(error) => warn!(%error, "lease not renewed (retrying)"),
            }
        }
    }))
}
