//! Prometheus metrics of the node agent and the controller, and the small
//! HTTP server that serves them with `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::task::AbortOnDrop;

/// Label of a counter split by kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Event kind, outcome or phase.
    pub kind: String,
}

impl KindLabel {
    fn of(kind: &str) -> Self {
        KindLabel { kind: kind.into() }
    }
}

/// Label of a count split by the kind of error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// The error's kind (`controller::error::Error::metric_label`).
    pub error: String,
}

/// Labels of an alert count: no pod names (bounded cardinality).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// The rule's id.
    pub rule: String,
    /// Its severity.
    pub severity: String,
    /// The container's namespace (empty for host cgroups).
    pub namespace: String,
}

/// The node agent's metrics.
#[derive(Clone, Default)]
pub struct AgentMetrics {
    /// Kernel events received, by kind.
    pub events: Family<KindLabel, Counter>,
    /// Events lost in the kernel (ring buffer full, map full, cut paths).
    pub drops: Gauge,
    /// Pod containers with a report in progress.
    pub containers: Gauge,
    /// Report writes, by outcome (`applied`, `unchanged`, `failed`).
    pub report_writes: Family<KindLabel, Counter>,
    /// Failed calls to the API server.
    pub api_errors: Counter,
    /// Cgroups of containers the runtime could not name when first seen
    /// (named later, never, or found another runtime's: `foreign_cgroups`).
    pub resolution_failures: Counter,
    /// Cgroups no report takes (host processes, pod sandboxes, the agent's
    /// own pod) that the kernel was told to stop recording.
    pub cgroups_not_recorded: Counter,
    /// Container cgroups no runtime this agent follows knows, once each
    /// had listed all its containers (another node's, on a kernel several
    /// nodes share): no longer recorded, never reported.
    pub foreign_cgroups: Counter,
    /// Cgroups outside the part of the hierarchy this agent sees (its
    /// cgroup namespace, as in a kind node: the other nodes' and the
    /// host's), ignored in the kernel from their first syscall on.
    pub out_of_view_cgroups: Gauge,
    /// Losses on the node no cgroup could be charged with, by kind
    /// (`unattributed_drops`, `storage_failures`, `syscalls_out_of_range`).
    pub node_losses: Family<KindLabel, Gauge>,
    /// Cgroups whose behavior could not be reported, by reason
    /// (`path_unknown`, `never_named`).
    pub lost_cgroups: Family<KindLabel, Counter>,
    /// Alerts raised, by rule, severity and namespace.
    pub alerts: Family<AlertLabels, Counter>,
    /// Alerts that did not reach an output, by output (`queue`, `event`,
    /// `alertmanager`).
    pub alerts_undelivered: Family<KindLabel, Counter>,
    /// Containers whose events are checked against a guarding profile.
    pub guarded_containers: Gauge,
    /// Reports last written covered by their workload's profile.
    pub covered_reports: Gauge,
}

impl AgentMetrics {
    /// Registers every metric under `imprint_agent_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("imprint_agent");
        r.register(
            "events",
            "Kernel events received, by kind",
            self.events.clone(),
        );
        r.register("drops", "Events lost in the kernel", self.drops.clone());
        r.register(
            "containers_tracked",
            "Pod containers with a report in progress",
            self.containers.clone(),
        );
        r.register(
            "report_writes",
            "ContainerBehaviorReport writes, by outcome",
            self.report_writes.clone(),
        );
        r.register(
            "api_errors",
            "Failed calls to the API server",
            self.api_errors.clone(),
        );
        r.register(
            "resolution_failures",
            "Container cgroups the runtime could not name",
            self.resolution_failures.clone(),
        );
        r.register(
            "cgroups_not_recorded",
            "Cgroups no report takes (host, pod sandboxes, the agent's pod) no longer recorded",
            self.cgroups_not_recorded.clone(),
        );
        r.register(
            "foreign_cgroups",
            "Container cgroups no followed runtime knows (another node's on a shared kernel) no longer recorded",
            self.foreign_cgroups.clone(),
        );
        r.register(
            "cgroups_out_of_view",
            "Cgroups outside the hierarchy this agent sees (another node's or the host's, from a cgroup namespace), ignored in the kernel",
            self.out_of_view_cgroups.clone(),
        );
        r.register(
            "node_losses",
            "Losses no cgroup could be charged with, by kind (in every report of the node)",
            self.node_losses.clone(),
        );
        r.register(
            "lost_cgroups",
            "Cgroups whose behavior could not be reported, by reason",
            self.lost_cgroups.clone(),
        );
        r.register(
            "guarded_containers",
            "Containers whose events are checked against their workload's guarding profile",
            self.guarded_containers.clone(),
        );
        r.register(
            "covered_reports",
            "Reports last written covered by their workload's profile (holding only what it lacks)",
            self.covered_reports.clone(),
        );
        r.register(
            "alerts",
            "Alerts raised, by rule, severity and namespace",
            self.alerts.clone(),
        );
        r.register(
            "alerts_undelivered",
            "Alerts that did not reach an output, by output",
            self.alerts_undelivered.clone(),
        );
    }

    /// Counts one alert.
    pub fn alert(&self, rule: &str, severity: &str, namespace: &str) {
        self.alerts
            .get_or_create(&AlertLabels {
                rule: rule.into(),
                severity: severity.into(),
                namespace: namespace.into(),
            })
            .inc();
    }

    /// Counts alerts that did not reach `output`.
    pub fn undelivered(&self, output: &str, n: u64) {
        self.alerts_undelivered
            .get_or_create(&KindLabel::of(output))
            .inc_by(n);
    }

    /// Sets the node-wide loss gauges.
    pub fn set_node_losses(&self, losses: &imprint_crd::report::NodeLosses) {
        for (kind, value) in [
            ("unattributed_drops", losses.unattributed_drops),
            ("storage_failures", losses.storage_failures),
            ("syscalls_out_of_range", losses.syscalls_out_of_range),
        ] {
            self.node_losses
                .get_or_create(&KindLabel::of(kind))
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// Counts one cgroup whose behavior could not be reported.
    pub fn lost_cgroup(&self, reason: &str) {
        self.lost_cgroups
            .get_or_create(&KindLabel::of(reason))
            .inc();
    }

    /// Counts one event of `kind`.
    pub fn event(&self, kind: &str) {
        self.events.get_or_create(&KindLabel::of(kind)).inc();
    }

    /// Counts one report write with its outcome.
    pub fn write(&self, outcome: &str) {
        self.report_writes
            .get_or_create(&KindLabel::of(outcome))
            .inc();
    }
}

/// The controller's metrics.
#[derive(Clone)]
pub struct ControllerMetrics {
    /// BehaviorProfiles by phase.
    pub profiles: Family<KindLabel, Gauge>,
    /// Workload merges done.
    pub merges: Counter,
    /// Reconciles that failed, by the error's kind.
    pub reconcile_errors: Family<ErrorLabel, Counter>,
    /// Reconcile durations, seconds.
    pub reconcile_duration: Histogram,
    /// Report entries skipped as invalid (unknown syscall names, garbage paths).
    pub skipped_entries: Counter,
    /// Reports of deleted pods folded into their workload's archive.
    pub folded_reports: Counter,
    /// Deleted reports released without a fold, by reason
    /// (`controller::release::Unfolded`).
    pub released_unfolded: Family<KindLabel, Counter>,
    /// 1 while this replica holds the leader Lease (or runs without one).
    pub leader: Gauge,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics {
            profiles: Family::default(),
            merges: Counter::default(),
            reconcile_errors: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            skipped_entries: Counter::default(),
            folded_reports: Counter::default(),
            released_unfolded: Family::default(),
            leader: Gauge::default(),
        }
    }
}

impl ControllerMetrics {
    /// Registers every metric under `imprint_controller_`.
    pub fn register(&self, registry: &mut Registry) {
        for error in crate::controller::error::Error::LABELS {
            let _ = self.reconcile_errors.get_or_create(&ErrorLabel {
                error: error.into(),
            });
        }
        let r = registry.sub_registry_with_prefix("imprint_controller");
        r.register(
            "profiles",
            "BehaviorProfiles by phase",
            self.profiles.clone(),
        );
        r.register("merges", "Workload merges done", self.merges.clone());
        r.register(
            "reconcile_errors",
            "Reconciles that failed, by the kind of error",
            self.reconcile_errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            self.reconcile_duration.clone(),
        );
        r.register(
            "skipped_entries",
            "Report entries skipped as invalid",
            self.skipped_entries.clone(),
        );
        r.register(
            "leader",
            "1 while this replica leads (holds the Lease)",
            self.leader.clone(),
        );
        r.register(
            "folded_reports",
            "Reports of deleted pods folded into their workload's archive",
            self.folded_reports.clone(),
        );
        for kind in crate::controller::release::Unfolded::LABELS {
            let _ = self.released_unfolded.get_or_create(&KindLabel::of(kind));
        }
        r.register(
            "released_unfolded",
            "Deleted reports released without being folded, by reason",
            self.released_unfolded.clone(),
        );
    }

    /// Counts one report released without a fold.
    pub fn released_unfolded(&self, reason: &str) {
        self.released_unfolded
            .get_or_create(&KindLabel::of(reason))
            .inc();
    }

    /// Counts one failed reconcile with the error's metric label.
    pub fn reconcile_error(&self, error: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabel {
                error: error.into(),
            })
            .inc();
    }

    /// Sets the number of profiles in `phase`.
    pub fn set_profiles(&self, phase: &str, count: i64) {
        self.profiles
            .get_or_create(&KindLabel::of(phase))
            .set(count);
    }
}

/// Starts [`serve`] in the background: returns the readiness flag to set
/// and a guard that stops the server when dropped. A server that stops
/// (the address is taken, say) is logged, not fatal.
pub(crate) fn start(address: SocketAddr, registry: Registry) -> (Arc<AtomicBool>, AbortOnDrop) {
    let ready = Arc::new(AtomicBool::new(false));
    let server = serve(address, Arc::new(registry), ready.clone());
    let guard = AbortOnDrop(tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::warn!(%error, "metrics server stopped");
        }
    }));
    (ready, guard)
}

/// Serves `/metrics` (OpenMetrics text), `/healthz` (the process runs) and
/// `/readyz` (`ready` is set) on `address` until the task is dropped.
pub async fn serve(
    address: SocketAddr,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut text = String::new();
                    match prometheus_client::encoding::text::encode(&mut text, &registry) {
                        Ok(()) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                            .into_response(),
                        Err(error) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
                        }
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::Relaxed);
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, app).await
}
