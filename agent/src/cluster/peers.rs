//! Network peers by name: which pod or Service stands behind an address,
//! from reflector stores of Pods and Services (no GET per address).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use imprint_crd::report::{Direction, NetworkEndpoint, Peer, WorkloadRef};
use k8s_openapi::api::core::v1::{Pod, Service};

use super::workload::Workloads;

/// What an address belongs to.
#[derive(Clone, Debug)]
enum Target {
    Pod(Arc<Pod>),
    Service(Arc<Service>),
}

/// Addresses of the cluster's pods and Services at one moment.
#[derive(Debug, Default)]
pub struct PeerIndex {
    by_address: HashMap<IpAddr, Target>,
    pods: Vec<Arc<Pod>>,
}

/// An address in canonical form (IPv4-mapped IPv6 as IPv4).
fn canonical(address: &str) -> Option<IpAddr> {
    address.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Whether a pod still holds its address (not finished, not on the
/// host's network, where the address is the node's).
fn holds_address(pod: &Pod) -> bool {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    !host_network && !finished
}

impl PeerIndex {
    /// Indexes the addresses of `pods` and `services`.
    pub fn build(pods: Vec<Arc<Pod>>, services: Vec<Arc<Service>>) -> Self {
        let mut by_address = HashMap::new();
        for pod in pods.iter().filter(|p| holds_address(p)) {
            let status = pod.status.as_ref();
            let ips = status
                .and_then(|s| s.pod_ips.as_ref())
                .map(|ips| ips.iter().map(|ip| ip.ip.clone()).collect::<Vec<_>>())
                .or_else(|| status.and_then(|s| s.pod_ip.clone()).map(|ip| vec![ip]))
                .unwrap_or_default();
            for ip in ips.iter().filter_map(|ip| canonical(ip)) {
                by_address.insert(ip, Target::Pod(pod.clone()));
            }
        }
        for service in &services {
            let spec = service.spec.as_ref();
            let ips = spec
                .and_then(|s| s.cluster_ips.clone())
                .or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip]))
                .unwrap_or_default();
            for ip in ips.iter().filter_map(|ip| canonical(ip)) {
                by_address.insert(ip, Target::Service(service.clone()));
            }
        }
        PeerIndex { by_address, pods }
    }

    /// Number of indexed addresses.
    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    /// Whether no address is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }

    /// The pod or Service behind `address`, with its workload.
    pub async fn peer(&self, address: &str, workloads: &Workloads) -> Option<Peer> {
        let target = self.by_address.get(&canonical(address)?)?;
        match target {
            Target::Pod(pod) => Some(Peer {
                kind: "Pod".into(),
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                workload: workloads.of_pod(pod).await,
            }),
            Target::Service(service) => {
                let namespace = service.metadata.namespace.clone().unwrap_or_default();
                let mut owners = Vec::new();
                for pod in self.selected(service) {
                    let workload = workloads.of_pod(&pod).await;
                    if !owners.contains(&workload) {
                        owners.push(workload);
                    }
                }
                let mut owners: Vec<WorkloadRef> = if owners.iter().all(Option::is_some) {
                    owners.into_iter().flatten().collect()
                } else {
                    Vec::new()
                };
                Some(Peer {
                    kind: "Service".into(),
                    namespace,
                    name: service.metadata.name.clone().unwrap_or_default(),
                    workload: if owners.len() == 1 {
                        owners.pop()
                    } else {
                        None
                    },
                })
            }
        }
    }

    /// Pods a Service selects (same namespace, every selector label matches).
    fn selected(&self, service: &Service) -> Vec<Arc<Pod>> {
        let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return Vec::new();
        };
        if selector.is_empty() {
            return Vec::new();
        }
        self.pods
            .iter()
            .filter(|p| p.metadata.namespace == service.metadata.namespace && holds_address(p))
            .filter(|p| matches(selector, p.metadata.labels.as_ref()))
            .cloned()
            .collect()
    }

    /// Fills in the peer of every outbound and inbound endpoint it can resolve.
    pub async fn resolve(&self, endpoints: &mut [NetworkEndpoint], workloads: &Workloads) {
        for endpoint in endpoints.iter_mut() {
            if endpoint.direction == Direction::Listening || endpoint.peer.is_some() {
                continue;
            }
            endpoint.peer = self.peer(&endpoint.address, workloads).await;
        }
    }
}

/// Whether `labels` carry every key and value of `selector`.
fn matches(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(labels) = labels else {
        return false;
    };
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_compared_in_canonical_form() {
        assert_eq!(canonical("::ffff:10.244.0.5"), canonical("10.244.0.5"));
        assert_eq!(canonical("fd00::1"), "fd00::1".parse().ok());
        assert_eq!(canonical("not an address"), None);
    }

    #[test]
    fn a_selector_needs_every_label() {
        let selector: BTreeMap<String, String> = [("app".into(), "web".into())].into();
        let web: BTreeMap<String, String> =
            [("app".into(), "web".into()), ("tier".into(), "x".into())].into();
        let db: BTreeMap<String, String> = [("app".into(), "db".into())].into();
        assert!(matches(&selector, Some(&web)));
        assert!(!matches(&selector, Some(&db)));
        assert!(!matches(&selector, None));
    }

    #[test]
    fn finished_and_host_network_pods_hold_no_address() {
        let mut pod = Pod::default();
        assert!(holds_address(&pod));
        pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert!(!holds_address(&pod));
        let host = Pod {
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                host_network: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!holds_address(&host));
    }
}
