//! `imprint recommend --format networkpolicy`: the NetworkPolicy of one
//! workload from its reports on file. Reports name their peers by pod,
//! Service and workload, but a policy selects pods by labels and allows the
//! ports a Service translates to: those come from the cluster's API (read
//! only), as the controller reads them. What is missing is said, not guessed.

use std::time::Duration;

use imprint_crd::report::{ContainerBehaviorReportSpec, NetworkEndpoint, WorkloadRef};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use thiserror::Error;

use super::network_policy::{self, Derived};
use super::network_view::NetworkView;
use super::objects::profile_name;

/// How long the cluster's Services, nodes and API server endpoints may
/// take to be listed.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(15);

/// Why no NetworkPolicy can be recommended.
#[derive(Debug, Error)]
pub enum RecommendError {
    /// A report has no Kubernetes workload (a plain host or runtime container).
    #[error(
        "{0}: no Kubernetes namespace and workload in its subject (a plain host, runtime or Compose container): a NetworkPolicy selects a workload's pods, so it needs reports of pods"
    )]
    NoWorkload(String),
    /// The reports are of more than one workload.
    #[error(
        "the reports are of more than one workload ({0}): a NetworkPolicy is per workload, give the reports of one"
    )]
    SeveralWorkloads(String),
    /// The cluster's API could not be read.
    #[error(
        "a NetworkPolicy selects pods by their workloads' selectors and allows the ports Services translate to; reports do not carry those, so they are read from the cluster's API (KUBECONFIG, or in-cluster), which could not be read: {0}"
    )]
    NoCluster(String),
    /// The workload's own selector could not be read.
    #[error(
        "the pod selector of {kind} {namespace}/{name} cannot be read from the cluster (gone, or it selects by expressions): no NetworkPolicy"
    )]
    NoSelector {
        /// Namespace.
        namespace: String,
        /// Workload kind.
        kind: String,
        /// Workload name.
        name: String,
    },
}

/// The one (namespace, workload) of `reports` (named by `names` in errors),
/// and the endpoints their containers used (sorted, without repeats).
pub fn subject_of<'a>(
    names: &[String],
    reports: impl IntoIterator<Item = &'a ContainerBehaviorReportSpec>,
) -> Result<(String, WorkloadRef, Vec<NetworkEndpoint>), RecommendError> {
    let mut subject: Option<(String, WorkloadRef)> = None;
    let mut endpoints = Vec::new();
    for (index, report) in reports.into_iter().enumerate() {
        let name = names.get(index).cloned().unwrap_or_default();
        let (Some(namespace), Some(workload)) = (
            &report.subject.namespace,
            report
                .subject
                .workload
                .as_ref()
                .filter(|w| w.kind != crate::runtime::COMPOSE_SERVICE_KIND),
        ) else {
            return Err(RecommendError::NoWorkload(name));
        };
        let this = (namespace.clone(), workload.clone());
        match &subject {
            Some(first) if *first != this => {
                return Err(RecommendError::SeveralWorkloads(format!(
                    "{} {}/{} and {} {}/{}",
                    first.1.kind, first.0, first.1.name, this.1.kind, this.0, this.1.name
                )));
            }
            Some(_) => {}
            None => subject = Some(this),
        }
        endpoints.extend(report.network.iter().cloned());
    }
    let (namespace, workload) = subject.ok_or_else(|| RecommendError::NoWorkload(String::new()))?;
    Ok((namespace, workload, network_policy::distinct(endpoints)))
}

/// The cluster's API client, or what is missing.
pub async fn client() -> Result<Client, RecommendError> {
    Client::try_default()
        .await
        .map_err(|e| RecommendError::NoCluster(e.to_string()))
}

/// The NetworkPolicy (named `name`, else as the controller names it) of
/// the workload of `reports` (files `names`), with what the derivation says
/// about it; the cluster's Services, nodes and API server endpoints must
/// be listed within `list_timeout` ([`LIST_TIMEOUT`] for a user).
pub async fn recommend(
    client: Client,
    names: &[String],
    reports: &[&ContainerBehaviorReportSpec],
    name: Option<String>,
    list_timeout: Duration,
) -> Result<(NetworkPolicy, Derived), RecommendError> {
    let (namespace, workload, endpoints) = subject_of(names, reports.iter().copied())?;
    let (view, _watches) = NetworkView::start(client);
    tokio::time::timeout(list_timeout, view.ready())
        .await
        .map_err(|_| {
            RecommendError::NoCluster(format!(
                "Services, Nodes and the API server's EndpointSlices not listed within {} s",
                list_timeout.as_secs()
            ))
        })?
        .map_err(RecommendError::NoCluster)?;
    let (selector, facts) = view.facts(&namespace, &workload, &endpoints).await;
    let selector = selector.ok_or_else(|| RecommendError::NoSelector {
        namespace: namespace.clone(),
        kind: workload.kind.clone(),
        name: workload.name.clone(),
    })?;
    let derived = network_policy::derive(&namespace, &selector, &endpoints, &facts);
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.unwrap_or_else(|| profile_name(&workload))),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        spec: Some(derived.spec.clone()),
    };
    Ok((policy, derived))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::report::Subject;

    fn report(namespace: Option<&str>, workload: Option<&str>) -> ContainerBehaviorReportSpec {
        ContainerBehaviorReportSpec {
            subject: Subject {
                namespace: namespace.map(Into::into),
                workload: workload.map(|name| WorkloadRef {
                    kind: "Deployment".into(),
                    name: name.into(),
                }),
                ..Subject::default()
            },
            ..ContainerBehaviorReportSpec::default()
        }
    }

    #[test]
    fn reports_must_be_of_one_workload_of_a_cluster() {
        let names = vec!["a.json".to_string(), "b.json".to_string()];
        let host = report(None, None);
        let error = subject_of(&names, [&host]).unwrap_err();
        assert!(
            matches!(error, RecommendError::NoWorkload(ref n) if n == "a.json"),
            "{error}"
        );
        assert!(error.to_string().contains("plain host"));

        let web = report(Some("shop"), Some("web"));
        let db = report(Some("shop"), Some("db"));
        let error = subject_of(&names, [&web, &db]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("Deployment shop/web and Deployment shop/db"),
            "{error}"
        );

        // A Compose service (a Docker host) is no Kubernetes workload.
        let mut composed = report(Some("shop"), Some("api"));
        composed.subject.workload.as_mut().unwrap().kind =
            crate::runtime::COMPOSE_SERVICE_KIND.into();
        let error = subject_of(&names, [&composed]).unwrap_err();
        assert!(matches!(error, RecommendError::NoWorkload(_)), "{error}");

        let other = report(Some("shop"), Some("web"));
        let (namespace, workload, endpoints) = subject_of(&names, [&web, &other]).unwrap();
        assert_eq!(
            (namespace.as_str(), workload.name.as_str()),
            ("shop", "web")
        );
        assert!(endpoints.is_empty());
    }

    #[tokio::test]
    async fn without_a_cluster_it_says_what_is_missing() {
        // An API server that does not answer (a closed port on loopback).
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let web = report(Some("shop"), Some("web"));
        let result = recommend(
            client,
            &["web.json".into()],
            &[&web],
            None,
            Duration::from_secs(2),
        )
        .await;
        let error = result.unwrap_err();
        assert!(matches!(error, RecommendError::NoCluster(_)), "{error}");
        assert!(
            error.to_string().contains("reports do not carry those"),
            "{error}"
        );
    }
}
