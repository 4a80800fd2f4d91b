//! `imprint cleanup`: releases what an uninstall would leave held. Every
//! report carries the fold finalizer, which only a running controller
//! removes; with the controller gone, a pod deleted later would leave its
//! report (and its namespace) terminating for good. Cleanup first waits for
//! the agents to be gone (an agent's last write would put the finalizer
//! back; one stuck on an unreachable node is named, and not waited for
//! beyond the timeout), then removes the finalizer from every report. The
//! reports themselves stay: they are results, like the profiles.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, stream};
use imprint_crd::report::ContainerBehaviorReport;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::publish::release_fold;

/// Page size of the report listing.
const PAGE: u32 = 500;
/// Attempts per report when it changes between read and patch (409).
const ATTEMPTS: usize = 3;
/// Reports patched at once.
const CONCURRENT_PATCHES: usize = 16;
/// Listings started again from the first page when a continue token
/// expired (410) meanwhile.
const RELISTS: usize = 3;
/// Failures named in the error (the rest are counted).
const NAMED_FAILURES: usize = 10;

/// What `cleanup` waits for and how long.
#[derive(Debug, Clone)]
pub struct CleanupOptions {
    /// Wait until no pod matches this label selector in this namespace
    /// (the agents) before releasing.
    pub wait_for_pods: Option<(String, String)>,
    /// Longest wait for those pods.
    pub timeout: Duration,
}

/// What `cleanup` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupSummary {
    /// Reports whose fold finalizer was removed.
    pub released: usize,
    /// Reports that had no fold finalizer (or were gone meanwhile).
    pub untouched: usize,
    /// Pods still there when the wait for them timed out.
    pub pods_left: Vec<String>,
}

/// Waits for the agents (if asked), then releases every report.
pub async fn run(client: Client, options: &CleanupOptions) -> Result<CleanupSummary> {
    let pods_left = match &options.wait_for_pods {
        Some((namespace, selector)) => {
            wait_for_no_pods(&client, namespace, selector, options.timeout).await?
        }
        None => Vec::new(),
    };
    let mut summary = release_all(&client).await?;
    summary.pods_left = pods_left;
    Ok(summary)
}

/// Polls until no pod of `namespace` matches `selector`, or the timeout;
/// returns the pods still there then (an agent on an unreachable node
/// stays Terminating: its reports are released anyway, and it is named).
async fn wait_for_no_pods(
    client: &Client,
    namespace: &str,
    selector: &str,
    timeout: Duration,
) -> Result<Vec<String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let start = Instant::now();
    loop {
        let left: Vec<String> = pods
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .with_context(|| format!("listing pods {selector} in {namespace}"))?
            .items
            .iter()
            .map(|pod| pod.name_any())
            .collect();
        if left.is_empty() {
            return Ok(left);
        }
        if start.elapsed() >= timeout {
            warn!(
                pods = %left.join(", "),
                selector,
                namespace,
                "pods still there after {}s: releasing the reports anyway (a write of theirs would hold its report again)",
                timeout.as_secs()
            );
            return Ok(left);
        }
        info!(
            pods = left.len(),
            selector, "waiting for the agents to be gone"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Removes the fold finalizer from every report of the cluster, a page
/// at a time, several reports at once.
async fn release_all(client: &Client) -> Result<CleanupSummary> {
    let all = Api::<ContainerBehaviorReport>::all(client.clone());
    let mut summary = CleanupSummary::default();
    let mut failures = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    let mut relists = 0;
    loop {
        let page = match all.list_metadata(&params).await {
            Ok(page) => page,
            // The continue token expired: start again (released reports
            // are untouched the second time).
            Err(kube::Error::Api(status)) if status.code == 410 && relists < RELISTS => {
                relists += 1;
                params = ListParams::default().limit(PAGE);
                continue;
            }
            Err(error) => {
                return Err(error).context(format!(
                    "listing ContainerBehaviorReports (released {} before)",
                    summary.released
                ));
            }
        };
        let outcomes: Vec<_> = stream::iter(&page.items)
            .map(|report| async move {
                let namespace = report.namespace().unwrap_or_default();
                let name = report.name_any();
                let api = Api::<ContainerBehaviorReport>::namespaced(client.clone(), &namespace);
                let outcome =
                    release_one(&api, &name, report.finalizers(), report.resource_version()).await;
                (namespace, name, outcome)
            })
            .buffer_unordered(CONCURRENT_PATCHES)
            .collect()
            .await;
        for (namespace, name, outcome) in outcomes {
            match outcome {
                Ok(true) => summary.released += 1,
                Ok(false) => summary.untouched += 1,
                Err(error) => {
                    warn!(%error, namespace, report = name, "could not release the report");
                    failures.push(format!("{namespace}/{name}: {error}"));
                }
            }
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    if !failures.is_empty() {
        let more = failures.len().saturating_sub(NAMED_FAILURES);
        failures.truncate(NAMED_FAILURES);
        bail!(
            "{} report(s) keep the fold finalizer (released {}): {}{}",
            failures.len() + more,
            summary.released,
            failures.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        );
    }
    Ok(summary)
}

/// Releases one report, reading it again when it changed meanwhile.
async fn release_one(
    api: &Api<ContainerBehaviorReport>,
    name: &str,
    finalizers: &[String],
    resource_version: Option<String>,
) -> Result<bool, kube::Error> {
    let (mut finalizers, mut version) = (finalizers.to_vec(), resource_version);
    for attempt in 1..=ATTEMPTS {
        match release_fold(api, name, &finalizers, version.as_deref()).await {
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < ATTEMPTS => {
                let Some(fresh) = api.get_metadata_opt(name).await? else {
                    return Ok(false);
                };
                finalizers = fresh.finalizers().to_vec();
                version = fresh.resource_version();
            }
            other => return other,
        }
    }
    Ok(false)
}
