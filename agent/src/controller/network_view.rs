//! What the NetworkPolicy derivation asks of the cluster, gathered before
//! it runs: Services and the nodes' addresses (reflector stores the
//! controller keeps), the API server's endpoints (its EndpointSlices), and
//! the pod selectors of the workloads involved (read when first needed,
//! then kept for a while).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imprint_crd::report::{NetworkEndpoint, Protocol, WorkloadRef};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::Value;
use tracing::debug;

use super::network_policy::{Cluster, PortRef, ServiceFacts, ServicePort};
use crate::cluster::reflect;
use crate::task::AbortOnDrop;

/// How long a workload's selector is kept before it is read again.
const SELECTOR_TTL: Duration = Duration::from_secs(300);
/// How long an unreadable workload waits before it is read again.
const RETRY: Duration = Duration::from_secs(30);

/// Labels that differ between a workload's pods (or between rollouts) and
/// so never select them: left out of a selector made from pod labels.
const VOLATILE_LABELS: [&str; 7] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
    "controller-uid",
];

/// (namespace, kind, name).
type WorkloadKey = (String, String, String);

/// A pod selector (`matchLabels`).
type Selector = BTreeMap<String, String>;

/// Selectors read, and when (`None`: could not be read).
type Selectors = HashMap<WorkloadKey, (Option<Selector>, Instant)>;

/// The cluster as the derivation sees it (a cheap handle).
#[derive(Clone)]
pub struct NetworkView {
    client: Client,
    services: Store<Service>,
    nodes: Store<Node>,
    api_server: Store<EndpointSlice>,
    selectors: Arc<Mutex<Selectors>>,
}

impl NetworkView {
    /// Starts the watches it needs; they end when the guards are dropped.
    pub fn start(client: Client) -> (NetworkView, Vec<AbortOnDrop>) {
        let (services, a) = reflect(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            |_: &Service| {},
        );
        let (nodes, b) = reflect(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            |_: &Node| {},
        );
        let (api_server, c) = reflect(
            Api::<EndpointSlice>::namespaced(client.clone(), "default"),
            watcher::Config::default().labels("kubernetes.io/service-name=kubernetes"),
            |_: &EndpointSlice| {},
        );
        let view = NetworkView {
            client,
            services,
            nodes,
            api_server,
            selectors: Arc::default(),
        };
        (view, vec![a, b, c])
    }

    /// Waits until the Services, nodes and API server endpoints are listed.
    pub async fn ready(&self) -> Result<(), String> {
        for store in [
            self.services.wait_until_ready().await,
            self.nodes.wait_until_ready().await,
            self.api_server.wait_until_ready().await,
        ] {
            store.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The facts for a workload of `namespace` and the endpoints its
    /// containers used: its own selector (`None` when it cannot be read)
    /// and what the peers need.
    pub async fn facts(
        &self,
        namespace: &str,
        own: &WorkloadRef,
        endpoints: &[NetworkEndpoint],
    ) -> (Option<BTreeMap<String, String>>, Facts) {
        let own_selector = self.selector(namespace, own).await;
        let mut selectors = HashMap::new();
        for endpoint in endpoints {
            let Some(peer) = &endpoint.peer else { continue };
            let Some(workload) = peer.workload.as_ref().filter(|_| peer.kind == "Pod") else {
                continue;
            };
            let key = (
                peer.namespace.clone(),
                workload.kind.clone(),
                workload.name.clone(),
            );
            if selectors.contains_key(&key) {
                continue;
            }
            let selector = self.selector(&peer.namespace, workload).await;
            selectors.insert(key, selector);
        }
        let services = endpoints
            .iter()
            .filter_map(|e| e.peer.as_ref())
            .filter(|p| p.kind == "Service")
            .filter_map(|p| {
                let service = self
                    .services
                    .get(&ObjectRef::new(&p.name).within(&p.namespace))?;
                Some((
                    (p.namespace.clone(), p.name.clone()),
                    service_facts(&service),
                ))
            })
            .collect();
        let facts = Facts {
            selectors,
            services,
            api_server: api_server_endpoints(&self.api_server.state()),
            nodes: node_addresses(&self.nodes.state()),
        };
        (own_selector, facts)
    }

    /// The pod selector of `workload` in `namespace`, read through the API
    /// server when not kept.
    async fn selector(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
    ) -> Option<BTreeMap<String, String>> {
        let key = (
            namespace.to_string(),
            workload.kind.clone(),
            workload.name.clone(),
        );
        if let Some((selector, at)) = self.selectors.lock().ok()?.get(&key) {
            let ttl = if selector.is_some() {
                SELECTOR_TTL
            } else {
                RETRY
            };
            if at.elapsed() < ttl {
                return selector.clone();
            }
        }
        let selector = self.read_selector(namespace, workload).await;
        if let Ok(mut kept) = self.selectors.lock() {
            if kept.len() > 10_000 {
                kept.clear();
            }
            kept.insert(key, (selector.clone(), Instant::now()));
        }
        selector
    }

    async fn read_selector(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
    ) -> Option<BTreeMap<String, String>> {
        let (group, version, plural) = match workload.kind.as_str() {
            "Deployment" => ("apps", "v1", "deployments"),
            "StatefulSet" => ("apps", "v1", "statefulsets"),
            "DaemonSet" => ("apps", "v1", "daemonsets"),
            "ReplicaSet" => ("apps", "v1", "replicasets"),
            "Job" => ("batch", "v1", "jobs"),
            "CronJob" => ("batch", "v1", "cronjobs"),
            "Pod" => ("", "v1", "pods"),
            _ => return None,
        };
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(group, version, &workload.kind),
            plural,
        );
        let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &resource);
        let object = match api.get(&workload.name).await {
            Ok(object) => object,
            Err(error) => {
                debug!(%error, namespace, kind = %workload.kind, name = %workload.name, "workload read failed");
                return None;
            }
        };
        let value = serde_json::to_value(&object).ok()?;
        selector_of(&workload.kind, &value)
    }
}

/// The pod selector of a workload object (as JSON): its
/// `spec.selector.matchLabels`, or the pods' labels without the volatile
/// ones (a Pod, a CronJob's job template). `None` when it selects by
/// expressions (not followed yet) or has nothing to select by.
pub fn selector_of(kind: &str, object: &Value) -> Option<BTreeMap<String, String>> {
    let labels = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .filter(|(k, _)| !VOLATILE_LABELS.contains(&k.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let selector = match kind {
        "Pod" => labels(&object["metadata"]["labels"]),
        "CronJob" => {
            labels(&object["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
        }
        _ => {
            let selector = &object["spec"]["selector"];
            if selector["matchExpressions"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                return None;
            }
            labels(&selector["matchLabels"])
        }
    };
    (!selector.is_empty()).then_some(selector)
}

/// A Service's selector and ports.
fn service_facts(service: &Service) -> ServiceFacts {
    let spec = service.spec.clone().unwrap_or_default();
    ServiceFacts {
        selector: spec.selector.unwrap_or_default(),
        ports: spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                let port = u16::try_from(p.port).ok()?;
                let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    _ => Protocol::Other,
                };
                use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
                let target = match p.target_port {
                    None => PortRef::Number(port),
                    Some(IntOrString::Int(n)) => PortRef::Number(u16::try_from(n).ok()?),
                    Some(IntOrString::String(name)) => match name.parse::<u16>() {
                        Ok(n) => PortRef::Number(n),
                        Err(_) => PortRef::Name(name),
                    },
                };
                Some(ServicePort {
                    port,
                    protocol,
                    target,
                })
            })
            .collect(),
    }
}

/// The API server's endpoints from the `kubernetes` Service's slices.
fn api_server_endpoints(slices: &[Arc<EndpointSlice>]) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for slice in slices {
        let ports: Vec<u16> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.and_then(|n| u16::try_from(n).ok()))
            .collect();
        for endpoint in &slice.endpoints {
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    continue;
                };
                for port in &ports {
                    found.push(SocketAddr::new(ip, *port));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Every address of every node.
fn node_addresses(nodes: &[Arc<Node>]) -> HashSet<IpAddr> {
    nodes
        .iter()
        .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
        .flatten()
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// What was gathered for one derivation.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    selectors: HashMap<WorkloadKey, Option<BTreeMap<String, String>>>,
    services: HashMap<(String, String), ServiceFacts>,
    api_server: Vec<SocketAddr>,
    nodes: HashSet<IpAddr>,
}

impl Cluster for Facts {
    fn workload_selector(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
    ) -> Option<BTreeMap<String, String>> {
        self.selectors
            .get(&(
                namespace.to_string(),
                workload.kind.clone(),
                workload.name.clone(),
            ))
            .cloned()
            .flatten()
    }

    fn service(&self, namespace: &str, name: &str) -> Option<ServiceFacts> {
        self.services
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn api_server(&self) -> Vec<SocketAddr> {
        self.api_server.clone()
    }

    fn is_node_address(&self, address: IpAddr) -> bool {
        self.nodes.contains(&address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_come_from_the_spec_or_the_pods_stable_labels() {
        let deployment = serde_json::json!({"spec": {"selector": {"matchLabels": {"app": "web"}}}});
        assert_eq!(
            selector_of("Deployment", &deployment),
            Some(BTreeMap::from([("app".into(), "web".into())]))
        );
        let by_expression = serde_json::json!({"spec": {"selector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}}});
        assert_eq!(selector_of("Deployment", &by_expression), None);
        let pod = serde_json::json!({"metadata": {"labels": {
            "app": "tool", "pod-template-hash": "7d9", "controller-uid": "x"}}});
        assert_eq!(
            selector_of("Pod", &pod),
            Some(BTreeMap::from([("app".into(), "tool".into())]))
        );
        let bare = serde_json::json!({"metadata": {"labels": {"pod-template-hash": "7d9"}}});
        assert_eq!(
            selector_of("Pod", &bare),
            None,
            "nothing stable to select by"
        );
    }
}
