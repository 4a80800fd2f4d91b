//! The NetworkPolicy a workload needs, derived (pure) from the network
//! endpoints its containers used, as merged into its profile, and from
//! what the cluster says of the peers: their workloads' selectors, the
//! Services and the target ports they translate to, the API server's
//! endpoints and the nodes' addresses ([`Cluster`]).
//!
//! Peers are named by what stays true when pods come and go: a workload's
//! own selector (never a pod's volatile labels), a namespace by its
//! `kubernetes.io/metadata.name` label, and only addresses outside the
//! cluster as `ipBlock`s (bounded: past [`MAX_IP_BLOCKS`] they fold into
//! wider networks, and the policy says so). Rules are merged by peer and
//! sorted, so the same behavior gives the same object.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use imprint_crd::report::{Direction, NetworkEndpoint, Peer, Protocol, WorkloadRef};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Addresses outside the cluster kept one by one at most, per direction;
/// past it they fold into /24 (IPv6 /64), then /16 (/48) networks, then
/// into "any address" on their ports.
pub const MAX_IP_BLOCKS: usize = 32;
/// The DNS port: a container that resolved names gets UDP and TCP to it.
pub const DNS_PORT: u16 = 53;
/// The label every namespace carries with its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A Service's port and where it forwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// The port clients connect to.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
    /// The pods' port it is translated to.
    pub target: PortRef,
}

/// What a Service selects and forwards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    /// Its pod selector (empty: a Service without one, whose endpoints
    /// are managed by hand).
    pub selector: BTreeMap<String, String>,
    /// Its ports.
    pub ports: Vec<ServicePort>,
}

/// What the derivation asks of the cluster.
pub trait Cluster {
    /// The pod selector (`matchLabels`) of a workload.
    fn workload_selector(
        &self,
        namespace: &str,
        workload: &WorkloadRef,
    ) -> Option<BTreeMap<String, String>>;
    /// A Service, by namespace and name.
    fn service(&self, namespace: &str, name: &str) -> Option<ServiceFacts>;
    /// The API server's endpoints (behind `default/kubernetes`).
    fn api_server(&self) -> Vec<SocketAddr>;
    /// Whether an address is one of a node's (kubelet probes come from
    /// there, and the supported enforcers always allow them).
    fn is_node_address(&self, address: IpAddr) -> bool;
}

/// A port in a rule: a number, or a named port of the destination pods.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    /// A port number.
    Number(u16),
    /// A container port's name.
    Name(String),
}

/// Who a rule allows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PeerKey {
    /// The pods a selector picks, in the policy's namespace (`None`) or
    /// another.
    Pods {
        namespace: Option<String>,
        labels: BTreeMap<String, String>,
    },
    /// A network, as a CIDR.
    Block(String),
    /// Any address (the ipBlocks folded past every bound).
    Anywhere,
}

/// A port and protocol of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    protocol: &'static str,
    port: PortRef,
}

/// The derived policy and what it could not say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Derived {
    /// The policy's spec.
    pub spec: NetworkPolicySpec,
    /// Listening ports no connection was seen to while learning
    /// (`8080/TCP`): the policy refuses them.
    pub unobserved_listeners: Vec<String>,
    /// What was left out or made wider, in words, sorted.
    pub notes: Vec<String>,
}

/// Rules by peer, each with its ports.
type Rules = BTreeMap<PeerKey, BTreeSet<PortKey>>;

/// The endpoints of several containers or reports, sorted, each once (the
/// derivation's input).
pub fn distinct(endpoints: impl IntoIterator<Item = NetworkEndpoint>) -> Vec<NetworkEndpoint> {
    let mut endpoints: Vec<NetworkEndpoint> = endpoints.into_iter().collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// The policy for the pods `selector` picks in `namespace` (a workload's),
/// from the endpoints its containers used.
pub fn derive(
    namespace: &str,
    selector: &BTreeMap<String, String>,
    endpoints: &[NetworkEndpoint],
    cluster: &dyn Cluster,
) -> Derived {
    let mut notes = BTreeSet::new();
    let mut ingress = Rules::new();
    let mut egress = Rules::new();
    let mut listening = BTreeSet::new();
    let mut accepted = BTreeSet::new();
    for endpoint in endpoints {
        let Some(protocol) = protocol_name(endpoint.protocol) else {
            if endpoint.direction != Direction::Listening {
                notes.insert(format!(
                    "{} {} of another IP protocol: NetworkPolicy cannot name it",
                    direction_word(endpoint.direction),
                    endpoint.address
                ));
            }
            continue;
        };
        let Ok(address) = endpoint.address.parse::<IpAddr>() else {
            notes.insert(format!(
                "address {:?} is not an IP address",
                endpoint.address
            ));
            continue;
        };
        match endpoint.direction {
            Direction::Listening => {
                listening.insert((endpoint.port, protocol));
            }
            Direction::Inbound => {
                accepted.insert((endpoint.port, protocol));
                let from_node = endpoint.peer.as_ref().is_some_and(|p| p.kind == "Node");
                if address.is_loopback() || from_node || cluster.is_node_address(address) {
                    continue;
                }
                let peer = peer_of_pod(namespace, endpoint, address, cluster, &mut notes);
                ingress.entry(peer).or_default().insert(PortKey {
                    protocol,
                    port: PortRef::Number(endpoint.port),
                });
            }
            Direction::Outbound => {
                if address.is_loopback() || address.is_unspecified() {
                    continue;
                }
                outbound(
                    namespace,
                    endpoint,
                    address,
                    protocol,
                    cluster,
                    &mut egress,
                    &mut notes,
                );
            }
        }
    }
    fold_blocks(&mut ingress, "sources", &mut notes);
    fold_blocks(&mut egress, "destinations", &mut notes);
    let unobserved_listeners = listening
        .difference(&accepted)
        .map(|(port, protocol)| format!("{port}/{protocol}"))
        .collect();
    Derived {
        spec: NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(
                ingress
                    .into_iter()
                    .map(|(peer, ports)| NetworkPolicyIngressRule {
                        from: policy_peer(&peer).map(|p| vec![p]),
                        ports: Some(ports.iter().map(policy_port).collect()),
                    })
                    .collect(),
            ),
            egress: Some(
                egress
                    .into_iter()
                    .map(|(peer, ports)| NetworkPolicyEgressRule {
                        to: policy_peer(&peer).map(|p| vec![p]),
                        ports: Some(ports.iter().map(policy_port).collect()),
                    })
                    .collect(),
            ),
        },
        unobserved_listeners,
        notes: notes.into_iter().collect(),
    }
}

/// The rule an outbound endpoint needs.
fn outbound(
    namespace: &str,
    endpoint: &NetworkEndpoint,
    address: IpAddr,
    protocol: &'static str,
    cluster: &dyn Cluster,
    egress: &mut Rules,
    notes: &mut BTreeSet<String>,
) {
    // A name resolved over UDP is retried over TCP when the answer is
    // too long: DNS gets both.
    let protocols: Vec<&'static str> = if endpoint.port == DNS_PORT {
        vec!["TCP", "UDP"]
    } else {
        vec![protocol]
    };
    match &endpoint.peer {
        Some(Peer {
            kind,
            namespace: peer_ns,
            name,
            ..
        }) if kind == "Service" => {
            if peer_ns == "default" && name == "kubernetes" {
                let servers = cluster.api_server();
                if servers.is_empty() {
                    notes.insert("the API server's endpoints are unknown".into());
                }
                for server in servers {
                    egress
                        .entry(PeerKey::Block(host_cidr(server.ip())))
                        .or_default()
                        .insert(PortKey {
                            protocol: "TCP",
                            port: PortRef::Number(server.port()),
                        });
                }
                return;
            }
            let Some(service) = cluster.service(peer_ns, name) else {
                notes.insert(format!(
                    "Service {peer_ns}/{name} is gone: its pods cannot be named"
                ));
                return;
            };
            if service.selector.is_empty() {
                notes.insert(format!(
                    "Service {peer_ns}/{name} has no selector: its endpoints cannot be named by labels"
                ));
                return;
            }
            let peer = PeerKey::Pods {
                namespace: (peer_ns != namespace).then(|| peer_ns.clone()),
                labels: service.selector.clone(),
            };
            for protocol in protocols {
                let target = service
                    .ports
                    .iter()
                    .find(|p| {
                        p.port == endpoint.port && protocol_name(p.protocol) == Some(protocol)
                    })
                    .map(|p| p.target.clone())
                    .unwrap_or(PortRef::Number(endpoint.port));
                egress.entry(peer.clone()).or_default().insert(PortKey {
                    protocol,
                    port: target,
                });
            }
        }
        _ => {
            let peer = peer_of_pod(namespace, endpoint, address, cluster, notes);
            for protocol in protocols {
                egress.entry(peer.clone()).or_default().insert(PortKey {
                    protocol,
                    port: PortRef::Number(endpoint.port),
                });
            }
        }
    }
}

/// A peer that is a pod (its workload's selector) or an address.
fn peer_of_pod(
    namespace: &str,
    endpoint: &NetworkEndpoint,
    address: IpAddr,
    cluster: &dyn Cluster,
    notes: &mut BTreeSet<String>,
) -> PeerKey {
    if let Some(Peer {
        kind,
        namespace: peer_ns,
        name,
        workload,
    }) = &endpoint.peer
        && kind == "Pod"
    {
        match workload
            .as_ref()
            .and_then(|w| cluster.workload_selector(peer_ns, w))
        {
            Some(labels) => {
                return PeerKey::Pods {
                    namespace: (peer_ns != namespace).then(|| peer_ns.clone()),
                    labels,
                };
            }
            None => {
                notes.insert(format!(
                    "pod {peer_ns}/{name}: its workload's selector is unknown, so its address is used (it changes when the pod is replaced)"
                ));
            }
        }
    }
    PeerKey::Block(host_cidr(address))
}

/// Folds a direction's ipBlocks to stay within [`MAX_IP_BLOCKS`].
fn fold_blocks(rules: &mut Rules, what: &str, notes: &mut BTreeSet<String>) {
    for (v4, v6) in [(24u8, 64u8), (16, 48)] {
        if blocks(rules) <= MAX_IP_BLOCKS {
            return;
        }
        regroup(rules, |cidr| PeerKey::Block(widen(cidr, v4, v6)));
        notes.insert(format!(
            "more than {MAX_IP_BLOCKS} {what} outside the cluster: folded into /{v4} (IPv6 /{v6}) networks"
        ));
    }
    if blocks(rules) > MAX_IP_BLOCKS {
        regroup(rules, |_| PeerKey::Anywhere);
        notes.insert(format!(
            "more than {MAX_IP_BLOCKS} networks of {what} outside the cluster: any address is allowed on their ports"
        ));
    }
}

/// Number of ipBlock peers.
fn blocks(rules: &Rules) -> usize {
    rules
        .keys()
        .filter(|k| matches!(k, PeerKey::Block(_)))
        .count()
}

/// Gives each ipBlock peer the peer `to` makes of its CIDR, merging ports.
fn regroup(rules: &mut Rules, to: impl Fn(&str) -> PeerKey) {
    for (peer, ports) in std::mem::take(rules) {
        let peer = match peer {
            PeerKey::Block(cidr) => to(&cidr),
            other => other,
        };
        rules.entry(peer).or_default().extend(ports);
    }
}

/// The network of `cidr`'s address with a prefix of `v4` (IPv4) or `v6`.
fn widen(cidr: &str, v4: u8, v6: u8) -> String {
    let (address, prefix) = cidr.split_once('/').unwrap_or((cidr, ""));
    let prefix: u8 = prefix.parse().unwrap_or(128);
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let bits = v4.min(prefix);
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            format!("{}/{bits}", std::net::Ipv4Addr::from(u32::from(a) & mask))
        }
        Ok(IpAddr::V6(a)) => {
            let bits = v6.min(prefix);
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            format!("{}/{bits}", std::net::Ipv6Addr::from(u128::from(a) & mask))
        }
        Err(_) => cidr.to_string(),
    }
}

/// The CIDR of one address: /32 or /128.
fn host_cidr(address: IpAddr) -> String {
    match address {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

/// A protocol as NetworkPolicy names it (`None`: it cannot).
fn protocol_name(protocol: Protocol) -> Option<&'static str> {
    match protocol {
        Protocol::Tcp => Some("TCP"),
        Protocol::Udp => Some("UDP"),
        Protocol::Other => None,
    }
}

fn direction_word(direction: Direction) -> &'static str {
    match direction {
        Direction::Outbound => "traffic to",
        Direction::Inbound => "traffic from",
        Direction::Listening => "a listener on",
    }
}

/// A rule's peer (`None`: any address).
fn policy_peer(peer: &PeerKey) -> Option<NetworkPolicyPeer> {
    match peer {
        PeerKey::Pods { namespace, labels } => Some(NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels.clone()),
                match_expressions: None,
            }),
            namespace_selector: namespace.as_ref().map(|ns| LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_string(),
                    ns.clone(),
                )])),
                match_expressions: None,
            }),
            ip_block: None,
        }),
        PeerKey::Block(cidr) => Some(NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.clone(),
                except: None,
            }),
            ..NetworkPolicyPeer::default()
        }),
        PeerKey::Anywhere => None,
    }
}

fn policy_port(port: &PortKey) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(port.protocol.to_string()),
        port: Some(match &port.port {
            PortRef::Number(n) => IntOrString::Int(i32::from(*n)),
            PortRef::Name(name) => IntOrString::String(name.clone()),
        }),
        end_port: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster: the shop's frontend, backend (Service `backend` 80 ->
    /// 8080, named port), redis (Service 6379 -> 6379), cluster DNS, the
    /// API server at 10.243.0.1:6443 and a node at 10.243.0.1.
    struct Shop;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    impl Cluster for Shop {
        fn workload_selector(
            &self,
            namespace: &str,
            workload: &WorkloadRef,
        ) -> Option<BTreeMap<String, String>> {
            match (namespace, workload.name.as_str()) {
                ("shop", "frontend") => Some(labels(&[("app", "frontend")])),
                ("shop", "backend") => Some(labels(&[("app", "backend")])),
                ("ops", "prober") => Some(labels(&[("app", "prober")])),
                _ => None,
            }
        }

        fn service(&self, namespace: &str, name: &str) -> Option<ServiceFacts> {
            let tcp = |port, target| ServicePort {
                port,
                protocol: Protocol::Tcp,
                target,
            };
            match (namespace, name) {
                ("shop", "backend") => Some(ServiceFacts {
                    selector: labels(&[("app", "backend")]),
                    ports: vec![tcp(80, PortRef::Name("http".into()))],
                }),
                ("shop", "redis") => Some(ServiceFacts {
                    selector: labels(&[("app", "redis")]),
                    ports: vec![tcp(6379, PortRef::Number(6379))],
                }),
                ("kube-system", "kube-dns") => Some(ServiceFacts {
                    selector: labels(&[("k8s-app", "kube-dns")]),
                    ports: vec![
                        ServicePort {
                            port: 53,
                            protocol: Protocol::Udp,
                            target: PortRef::Number(5353),
                        },
                        tcp(53, PortRef::Number(5353)),
                    ],
                }),
                ("shop", "manual") => Some(ServiceFacts::default()),
                _ => None,
            }
        }

        fn api_server(&self) -> Vec<SocketAddr> {
            vec!["10.243.0.1:6443".parse().unwrap()]
        }

        fn is_node_address(&self, address: IpAddr) -> bool {
            address == IpAddr::from([10, 243, 0, 1])
        }
    }

    fn endpoint(
        direction: Direction,
        protocol: Protocol,
        address: &str,
        port: u16,
        peer: Option<(&str, &str, &str, Option<&str>)>,
    ) -> NetworkEndpoint {
        NetworkEndpoint {
            direction,
            protocol,
            address: address.into(),
            port,
            peer: peer.map(|(kind, namespace, name, workload)| Peer {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                workload: workload.map(|w| WorkloadRef {
                    kind: "Deployment".into(),
                    name: w.into(),
                }),
            }),
        }
    }

    fn derive_backend(endpoints: &[NetworkEndpoint]) -> Derived {
        derive("shop", &labels(&[("app", "backend")]), endpoints, &Shop)
    }

    fn json(derived: &Derived) -> serde_json::Value {
        serde_json::to_value(&derived.spec).unwrap()
    }

    #[test]
    fn the_backend_of_a_three_tier_shop() {
        use Direction::*;
        use Protocol::*;
        let endpoints = [
            endpoint(Listening, Tcp, "0.0.0.0", 8080, None),
            // The frontend through the Service, twice (replicas).
            endpoint(
                Inbound,
                Tcp,
                "10.244.0.7",
                8080,
                Some(("Pod", "shop", "frontend-1", Some("frontend"))),
            ),
            endpoint(
                Inbound,
                Tcp,
                "10.244.0.8",
                8080,
                Some(("Pod", "shop", "frontend-2", Some("frontend"))),
            ),
            // kubelet probes from the node, by its address or as the
            // agent named it (the bridge's address).
            endpoint(Inbound, Tcp, "10.243.0.1", 8080, None),
            endpoint(
                Inbound,
                Tcp,
                "10.244.0.1",
                8080,
                Some(("Node", "", "node-1", None)),
            ),
            // A prober in another namespace.
            endpoint(
                Inbound,
                Tcp,
                "10.244.0.9",
                8080,
                Some(("Pod", "ops", "prober-1", Some("prober"))),
            ),
            // redis through its Service, DNS, the API server, loopback.
            endpoint(
                Outbound,
                Tcp,
                "10.96.0.20",
                6379,
                Some(("Service", "shop", "redis", None)),
            ),
            endpoint(
                Outbound,
                Udp,
                "10.96.0.10",
                53,
                Some(("Service", "kube-system", "kube-dns", None)),
            ),
            endpoint(
                Outbound,
                Tcp,
                "10.96.0.1",
                443,
                Some(("Service", "default", "kubernetes", None)),
            ),
            endpoint(Outbound, Tcp, "127.0.0.1", 9000, None),
            // An address outside the cluster.
            endpoint(Outbound, Tcp, "192.0.2.10", 443, None),
        ];
        let derived = derive_backend(&endpoints);
        assert!(derived.unobserved_listeners.is_empty());
        assert!(derived.notes.is_empty(), "{:?}", derived.notes);
        let expected = serde_json::json!({
            "podSelector": {"matchLabels": {"app": "backend"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                 "ports": [{"protocol": "TCP", "port": 8080}]},
                {"from": [{"podSelector": {"matchLabels": {"app": "prober"}},
                           "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}}],
                 "ports": [{"protocol": "TCP", "port": 8080}]},
            ],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"app": "redis"}}}],
                 "ports": [{"protocol": "TCP", "port": 6379}]},
                {"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                         "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                 "ports": [{"protocol": "TCP", "port": 5353}, {"protocol": "UDP", "port": 5353}]},
                {"to": [{"ipBlock": {"cidr": "10.243.0.1/32"}}],
                 "ports": [{"protocol": "TCP", "port": 6443}]},
                {"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}],
                 "ports": [{"protocol": "TCP", "port": 443}]},
            ],
        });
        assert_eq!(json(&derived), expected);
        // The same behavior in another order: the same object.
        let mut reversed = endpoints.to_vec();
        reversed.reverse();
        assert_eq!(json(&derive_backend(&reversed)), expected);
    }

    #[test]
    fn a_service_is_allowed_on_the_port_its_pods_get_after_translation() {
        let derived = derive(
            "shop",
            &labels(&[("app", "frontend")]),
            &[endpoint(
                Direction::Outbound,
                Protocol::Tcp,
                "10.96.0.30",
                80,
                Some(("Service", "shop", "backend", None)),
            )],
            &Shop,
        );
        assert_eq!(
            json(&derived)["egress"],
            serde_json::json!([{"to": [{"podSelector": {"matchLabels": {"app": "backend"}}}],
                               "ports": [{"protocol": "TCP", "port": "http"}]}])
        );
    }

    #[test]
    fn what_cannot_be_named_is_said() {
        use Direction::*;
        use Protocol::*;
        let derived = derive_backend(&[
            endpoint(Listening, Tcp, "0.0.0.0", 9090, None),
            endpoint(Listening, Udp, "0.0.0.0", 5000, None),
            endpoint(
                Outbound,
                Tcp,
                "10.96.0.40",
                80,
                Some(("Service", "shop", "manual", None)),
            ),
            endpoint(
                Outbound,
                Tcp,
                "10.244.0.50",
                8000,
                Some(("Pod", "shop", "lonely", None)),
            ),
            endpoint(Outbound, Other, "192.0.2.1", 0, None),
        ]);
        assert_eq!(derived.unobserved_listeners, ["5000/UDP", "9090/TCP"]);
        assert_eq!(derived.notes.len(), 3, "{:?}", derived.notes);
        assert!(derived.notes.iter().any(|n| n.contains("no selector")));
        assert!(derived.notes.iter().any(|n| n.contains("shop/lonely")));
        // The lonely pod is allowed by its address for now.
        assert_eq!(
            json(&derived)["egress"][0]["to"][0]["ipBlock"]["cidr"],
            "10.244.0.50/32"
        );
    }

    #[test]
    fn ip_blocks_fold_past_the_bound_and_say_so() {
        let endpoints: Vec<NetworkEndpoint> = (0..40u8)
            .map(|i| {
                endpoint(
                    Direction::Outbound,
                    Protocol::Tcp,
                    &format!("198.51.{}.{}", i / 20, i),
                    443,
                    None,
                )
            })
            .chain(std::iter::once(endpoint(
                Direction::Outbound,
                Protocol::Tcp,
                "2001:db8::1",
                443,
                None,
            )))
            .collect();
        let derived = derive_backend(&endpoints);
        let cidrs: Vec<String> = json(&derived)["egress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["to"][0]["ipBlock"]["cidr"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(cidrs, ["198.51.0.0/24", "198.51.1.0/24", "2001:db8::/64"]);
        assert_eq!(derived.notes.len(), 1, "{:?}", derived.notes);

        // Past every bound: any address, on the ports seen.
        let scattered: Vec<NetworkEndpoint> = (0..40u8)
            .map(|i| {
                endpoint(
                    Direction::Outbound,
                    Protocol::Tcp,
                    &format!("{}.1.1.1", i + 1),
                    443,
                    None,
                )
            })
            .collect();
        let derived = derive_backend(&scattered);
        assert_eq!(
            json(&derived)["egress"],
            serde_json::json!([{"ports": [{"protocol": "TCP", "port": 443}]}])
        );
        assert_eq!(derived.notes.len(), 3, "{:?}", derived.notes);
    }
}
