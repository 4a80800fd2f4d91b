//! Pods of other nodes, looked up when an address or a Service names one:
//! the agent's reflector holds only its own node's pods (memory, and less
//! to leak), so a peer elsewhere is asked for by its address (field
//! selector `status.podIP`) and a Service's pods by its selector, each
//! answer kept for a while (negative ones too) in a bounded cache.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::{Api, Client};
use tracing::debug;

use super::peers::holds_address;

/// How long an answer is kept.
const TTL: Duration = Duration::from_secs(300);
/// Longest a lookup may take (the publishing tick waits for it).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed lookup, none is tried for this long (the API server is
/// down or slow: the tick must not wait on every address).
const BACKOFF: Duration = Duration::from_secs(30);
/// Most answers kept, per cache.
const MAX_ENTRIES: usize = 4096;
/// Most addresses asked for per publishing tick: a container talking to
/// thousands of addresses never stalls a tick (the rest are asked for at
/// later writes of its report).
pub const LOOKUPS_PER_TICK: usize = 32;

/// A cache of answers that expire, bounded to [`MAX_ENTRIES`].
struct Answers<K, V> {
    entries: HashMap<K, (Instant, V)>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Answers<K, V> {
    fn new() -> Self {
        Answers {
            entries: HashMap::new(),
        }
    }

    fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.entries
            .get(key)
            .filter(|(at, _)| now.duration_since(*at) < TTL)
            .map(|(_, value)| value.clone())
    }

    fn put(&mut self, key: K, value: V, now: Instant) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries
                .retain(|_, (at, _)| now.duration_since(*at) < TTL);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (now, value));
    }
}

/// A pod as kept: its name, namespace, labels and owners (enough to name
/// a peer and its workload), not the whole object.
fn slim(pod: &Pod) -> Arc<Pod> {
    Arc::new(Pod {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            owner_references: pod.metadata.owner_references.clone(),
            ..ObjectMeta::default()
        },
        spec: None,
        status: None,
    })
}

/// A Service's selector: its namespace and label selector.
type SelectorKey = (String, String);

/// What the lookups remember, behind one lock (never held across a call).
struct State {
    by_address: Answers<IpAddr, Option<Arc<Pod>>>,
    by_service: Answers<SelectorKey, Vec<Arc<Pod>>>,
    /// No lookup before this (one failed a moment ago).
    backoff_until: Option<Instant>,
    /// Lookups left in this tick.
    budget: usize,
}

/// Looks up pods that are not in the agent's own-node reflector.
pub struct RemotePods {
    client: Client,
    state: Mutex<State>,
}

impl RemotePods {
    /// Lookups through `client`.
    pub fn new(client: Client) -> Self {
        RemotePods {
            client,
            state: Mutex::new(State {
                by_address: Answers::new(),
                by_service: Answers::new(),
                backoff_until: None,
                budget: LOOKUPS_PER_TICK,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("lookup state lock")
    }

    /// A new publishing tick: [`LOOKUPS_PER_TICK`] lookups again.
    pub fn new_tick(&self) {
        self.state().budget = LOOKUPS_PER_TICK;
    }

    /// Whether a lookup may be made now (none failed a moment ago, the
    /// tick's budget is not spent); takes one from the budget when so.
    fn may_ask(&self, now: Instant) -> bool {
        let mut state = self.state();
        if state.backoff_until.is_some_and(|until| now < until) || state.budget == 0 {
            return false;
        }
        state.budget -= 1;
        true
    }

    /// Lists pods; `None` when the API server did not answer (no lookup is
    /// made for [`BACKOFF`] then).
    async fn list(&self, api: Api<Pod>, params: ListParams, now: Instant) -> Option<Vec<Pod>> {
        match tokio::time::timeout(LOOKUP_TIMEOUT, api.list(&params)).await {
            Ok(Ok(list)) => Some(list.items),
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => "timed out".into(),
                };
                debug!(%error, "pod lookup failed; none tried for 30s");
                self.state().backoff_until = Some(now + BACKOFF);
                None
            }
        }
    }

    /// The pod (of any node) holding `address`, if any. Addresses no pod
    /// can hold (loopback, link-local, multicast, unspecified) are never
    /// asked for.
    pub async fn at(&self, address: IpAddr) -> Option<Arc<Pod>> {
        if !could_be_a_pod(address) {
            return None;
        }
        let now = Instant::now();
        if let Some(answer) = self.state().by_address.get(&address, now) {
            return answer;
        }
        if !self.may_ask(now) {
            return None;
        }
        let params = ListParams::default().fields(&format!("status.podIP={address}"));
        let pods = self
            .list(Api::all(self.client.clone()), params, now)
            .await?;
        let found = pods.iter().find(|p| holds_address(p)).map(slim);
        self.state().by_address.put(address, found.clone(), now);
        found
    }

    /// The pods (of any node) `service` selects: same namespace, every
    /// selector label; none for a Service without selector.
    pub async fn selected(&self, service: &Service) -> Vec<Arc<Pod>> {
        let Some(selector) = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .filter(|s| !s.is_empty())
        else {
            return Vec::new();
        };
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let key = (namespace.clone(), label_selector(selector));
        let now = Instant::now();
        if let Some(pods) = self.state().by_service.get(&key, now) {
            return pods;
        }
        if !self.may_ask(now) {
            return Vec::new();
        }
        let params = ListParams::default().labels(&key.1);
        let Some(pods) = self
            .list(
                Api::namespaced(self.client.clone(), &namespace),
                params,
                now,
            )
            .await
        else {
            return Vec::new();
        };
        let pods: Vec<Arc<Pod>> = pods.iter().filter(|p| holds_address(p)).map(slim).collect();
        self.state().by_service.put(key, pods.clone(), now);
        pods
    }
}

/// Whether a pod may hold `address`.
fn could_be_a_pod(address: IpAddr) -> bool {
    let link_local = match address {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    !(address.is_loopback() || address.is_unspecified() || address.is_multicast() || link_local)
}

/// `selector` as a label selector (`k=v,k=v`).
fn label_selector(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::mock_api;
    use crate::controller::objects::new_profile;
    use imprint_crd::report::WorkloadRef;

    fn api_server(fail: bool) -> (Client, mock_api::Calls) {
        let pod = serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-web-1",
                "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9",
                    "uid": "rs", "controller": true}]},
            "spec": {"nodeName": "node-b", "containers": [{"name": "web", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": "10.1.2.3"}
        });
        let list = serde_json::json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [pod]});
        let objects = mock_api::Objects::default();
        for path in ["/api/v1/pods", "/api/v1/namespaces/shop/pods"] {
            objects.lock().unwrap().insert(path.into(), list.clone());
        }
        let profile = new_profile(
            "shop",
            &WorkloadRef {
                kind: "Deployment".into(),
                name: "web".into(),
            },
        );
        mock_api::client_with(profile, Box::new(move |_, _| fail.then_some(500)), objects)
    }

    #[tokio::test]
    async fn a_pod_of_another_node_is_asked_for_by_its_address_once() {
        let (client, calls) = api_server(false);
        let remote = RemotePods::new(client);
        let address: IpAddr = "10.1.2.3".parse().unwrap();
        let pod = remote.at(address).await.expect("found by its address");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(
            pod.metadata.owner_references.as_ref().unwrap()[0].name,
            "web-7d9"
        );
        assert!(pod.spec.is_none() && pod.status.is_none(), "kept slim");
        assert!(remote.at(address).await.is_some());
        let calls = calls.lock().unwrap().clone();
        assert_eq!(
            calls.len(),
            1,
            "the second answer is the cached one: {calls:?}"
        );
        assert_eq!(calls[0].path, "/api/v1/pods");
        assert!(
            calls[0]
                .query
                .contains("fieldSelector=status.podIP%3D10.1.2.3"),
            "{}",
            calls[0].query
        );
    }

    #[tokio::test]
    async fn a_services_pods_are_listed_by_its_selector_in_its_namespace() {
        let (client, calls) = api_server(false);
        let remote = RemotePods::new(client);
        let service = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            status: None,
        };
        assert_eq!(remote.selected(&service).await.len(), 1);
        assert_eq!(remote.selected(&service).await.len(), 1);
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].path, "/api/v1/namespaces/shop/pods");
        assert!(
            calls[0].query.contains("labelSelector=app%3Dweb"),
            "{}",
            calls[0].query
        );
        let without = Service::default();
        assert!(
            remote.selected(&without).await.is_empty(),
            "no selector: none"
        );
    }

    /// The API server failing: one lookup fails, and the next addresses
    /// are not asked for during the backoff (a tick never waits on each).
    #[tokio::test]
    async fn a_failed_lookup_stops_lookups_for_a_while() {
        let (client, calls) = api_server(true);
        let remote = RemotePods::new(client);
        assert!(remote.at("10.1.2.3".parse().unwrap()).await.is_none());
        assert!(remote.at("10.1.2.4".parse().unwrap()).await.is_none());
        assert_eq!(calls.lock().unwrap().len(), 1);
    }

    /// A tick asks for at most [`LOOKUPS_PER_TICK`] addresses; addresses
    /// no pod holds are never asked for.
    #[tokio::test]
    async fn lookups_are_bounded_per_tick() {
        let (client, calls) = api_server(false);
        let remote = RemotePods::new(client);
        for address in ["127.0.0.1", "::1", "169.254.1.1", "0.0.0.0", "224.0.0.1"] {
            assert!(remote.at(address.parse().unwrap()).await.is_none());
        }
        assert!(calls.lock().unwrap().is_empty(), "never asked for");
        for n in 0..(LOOKUPS_PER_TICK + 10) {
            remote
                .at(format!("10.9.{}.{}", n / 250, n % 250).parse().unwrap())
                .await;
        }
        assert_eq!(calls.lock().unwrap().len(), LOOKUPS_PER_TICK);
        remote.new_tick();
        remote.at("10.8.0.1".parse().unwrap()).await;
        assert_eq!(calls.lock().unwrap().len(), LOOKUPS_PER_TICK + 1);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut answers = Answers::new();
        let now = Instant::now();
        for n in 0..(MAX_ENTRIES * 2) {
            answers.put(n, n, now);
        }
        assert!(answers.entries.len() <= MAX_ENTRIES);
        assert_eq!(
            answers.get(&(MAX_ENTRIES * 2 - 1), now),
            Some(MAX_ENTRIES * 2 - 1)
        );
        assert_eq!(
            answers.get(&(MAX_ENTRIES * 2 - 1), now + TTL),
            None,
            "expired"
        );
    }
}
