//! Network peers by name: which pod or Service stands behind an address,
//! from the reflector stores of this node's Pods and of Services, then
//! (for pods of other nodes) from [`RemotePods`] lookups.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use imprint_crd::report::{Direction, NetworkEndpoint, Peer, WorkloadRef};
use k8s_openapi::api::core::v1::{Pod, Service};

use super::remote::RemotePods;
use super::workload::Workloads;

/// What an address belongs to.
#[derive(Clone, Debug)]
enum Target {
    Pod(Arc<Pod>),
    Service(Arc<Service>),
    /// An address of this node itself.
    Node,
}

/// Addresses of this node's pods and the cluster's Services at one moment.
#[derive(Debug, Default)]
pub struct PeerIndex {
    by_address: HashMap<IpAddr, Target>,
    /// This node's name.
    node: String,
}

/// An address in canonical form (IPv4-mapped IPv6 as IPv4).
fn canonical(address: &str) -> Option<IpAddr> {
    address.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Whether a pod still holds its address (not finished, not on the
/// host's network, where the address is the node's).
pub(super) fn holds_address(pod: &Pod) -> bool {
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
    /// Indexes the addresses of `pods`, `services` and of this node
    /// (`node`, with the addresses `local`; loopback is left out).
    pub fn build(
        pods: Vec<Arc<Pod>>,
        services: Vec<Arc<Service>>,
        node: &str,
        local: impl IntoIterator<Item = IpAddr>,
    ) -> Self {
        let mut by_address = HashMap::new();
        for address in local.into_iter().filter(|a| !a.is_loopback()) {
            by_address.insert(address.to_canonical(), Target::Node);
        }
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
        PeerIndex {
            by_address,
            node: node.to_string(),
        }
    }

    /// Number of indexed addresses.
    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    /// Whether no address is indexed.
    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }

    /// The pod or Service behind `address`, with its workload: this
    /// node's pods and the Services from the index, other pods looked up.
    pub async fn peer(
        &self,
        address: &str,
        workloads: &Workloads,
        remote: &RemotePods,
    ) -> Option<Peer> {
        let address = canonical(address)?;
        let looked_up;
        let target = match self.by_address.get(&address) {
            Some(target) => target,
            None => {
                looked_up = Target::Pod(remote.at(address).await?);
                &looked_up
            }
        };
        match target {
            Target::Node => Some(Peer {
                kind: "Node".into(),
                namespace: String::new(),
                name: self.node.clone(),
                workload: None,
            }),
            Target::Pod(pod) => Some(Peer {
                kind: "Pod".into(),
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                workload: workloads.of_pod(pod).await,
            }),
            Target::Service(service) => {
                let namespace = service.metadata.namespace.clone().unwrap_or_default();
                let mut owners = Vec::new();
                for pod in remote.selected(service).await {
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

    /// Fills in the peer of every outbound and inbound endpoint it can resolve.
    pub async fn resolve(
        &self,
        endpoints: &mut [NetworkEndpoint],
        workloads: &Workloads,
        remote: &RemotePods,
    ) {
        for endpoint in endpoints.iter_mut() {
            if endpoint.direction == Direction::Listening || endpoint.peer.is_some() {
                continue;
            }
            endpoint.peer = self.peer(&endpoint.address, workloads, remote).await;
        }
    }
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
