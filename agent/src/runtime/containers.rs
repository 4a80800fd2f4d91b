//! The containers the runtimes named, by container id: filled by whichever
//! runtime APIs follow the sockets (containerd's, the CRI, Docker's), read
//! by every command that turns a cgroup into a container; and where those
//! sockets are.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use super::docker::DOCKER;
use super::identity::ContainerInfo;

/// Default sockets: containerd, k3s, CRI-O, Docker (`/var/run` is usually
/// a link to `/run`: the same socket is followed once), Podman. Every one
/// that exists is followed: a Docker host runs containerd too, which knows
/// Docker's containers by id only, and Docker's names win.
pub const DEFAULT_SOCKETS: [&str; 6] = [
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
];

/// The default sockets that exist.
pub fn default_sockets() -> Vec<PathBuf> {
    existing_sockets(DEFAULT_SOCKETS.iter().map(Path::new))
}

/// The `candidates` that exist, each file once (`/var/run` is often a link
/// to `/run`), in their order.
pub fn existing_sockets<'a>(candidates: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter(|p| p.exists())
        .filter(|p| seen.insert(p.canonicalize().unwrap_or_else(|_| p.to_path_buf())))
        .map(Path::to_path_buf)
        .collect()
}

/// Whether `new`, told about a container already `known`, replaces it:
/// Docker's API names a container as its user did, containerd's `moby`
/// namespace knows it by id only, so an entry from Docker's API is never
/// replaced by one from another API.
fn replaces(new: &ContainerInfo, known: &ContainerInfo) -> bool {
    new.runtime_namespace == DOCKER || known.runtime_namespace != DOCKER
}

/// Bound on containers remembered (gone ones are kept for late events and
/// for reports written at the end of a recording, until room is needed).
const MAX_CONTAINERS: usize = 16_384;

/// A container no runtime listed for this long is gone (removed): its
/// entry is the first to make room. Every runtime lists all its
/// containers at least every 10 s.
const GONE_AFTER: Duration = Duration::from_secs(60);

/// A container cgroup is another runtime's once every followed runtime
/// listed all its containers, without it, at least this long after the
/// cgroup was first seen (a runtime lists a container before it makes its
/// cgroup; the margin covers one that lists it a moment later).
pub const FOREIGN_AFTER: Duration = Duration::from_secs(5);

/// Containers by id, shared between the watcher task and the recorder.
#[derive(Clone, Debug, Default)]
pub struct Containers {
    inner: Arc<Mutex<State>>,
    /// Wakes the runtimes' followers for a listing now (a cgroup waits to
    /// be found another runtime's).
    wanted: Arc<tokio::sync::Notify>,
}

#[derive(Debug)]
struct State {
    /// Each container with when a runtime last listed it.
    by_id: HashMap<String, (ContainerInfo, Instant)>,
    capacity: usize,
    connected: bool,
    failures: u64,
    /// Containers not remembered: full, and none gone to make room for them.
    unremembered: u64,
    /// Each followed runtime (its socket) with when its last complete
    /// listing began (`None`: none completed yet).
    listings: HashMap<PathBuf, Option<Instant>>,
    /// When a listing was last asked for.
    wanted_at: Option<Instant>,
    /// UIDs of this node's pods: a container of one is never another's.
    local_pods: HashSet<String>,
}

impl State {
    /// Whether another runtime's containers can be told apart: at least
    /// one runtime is followed, and no container went unremembered.
    fn can_tell(&self) -> bool {
        self.unremembered == 0 && !self.listings.is_empty()
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            by_id: HashMap::new(),
            capacity: MAX_CONTAINERS,
            connected: false,
            failures: 0,
            unremembered: 0,
            listings: HashMap::new(),
            wanted_at: None,
            local_pods: HashSet::new(),
        }
    }
}

impl Containers {
    /// An empty set that remembers at most `capacity` containers.
    pub fn with_capacity(capacity: usize) -> Containers {
        let state = State {
            capacity,
            ..State::default()
        };
        Containers {
            inner: Arc::new(Mutex::new(state)),
            wanted: Arc::default(),
        }
    }

    /// The container with this id, if the runtime told about it.
    pub fn get(&self, id: &str) -> Option<ContainerInfo> {
        self.inner
            .lock()
            .ok()?
            .by_id
            .get(id)
            .map(|(info, _)| info.clone())
    }

    /// Containers known.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|s| s.by_id.len()).unwrap_or(0)
    }

    /// Whether no container is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the socket answered last time it was tried.
    pub fn connected(&self) -> bool {
        self.inner.lock().map(|s| s.connected).unwrap_or(false)
    }

    /// Failed connections or calls so far.
    pub fn failures(&self) -> u64 {
        self.inner.lock().map(|s| s.failures).unwrap_or(0)
    }

    /// Containers a runtime told about that were not remembered (the set
    /// was full of containers still listed): they are reported by id.
    pub fn unremembered(&self) -> u64 {
        self.inner.lock().map(|s| s.unremembered).unwrap_or(0)
    }

    /// Records what a runtime told about a container. Where two runtimes
    /// know it (a Docker host's containerd and dockerd), Docker's entry
    /// wins ([`replaces`]) and keeps the cgroup path containerd told.
    pub(crate) fn insert(&self, info: ContainerInfo) {
        self.insert_at(info, Instant::now());
    }

    /// [`Containers::insert`] at `now`. When full, the container gone the
    /// longest (unlisted for [`GONE_AFTER`]) makes room; if none is gone,
    /// the new one is counted as unremembered.
    fn insert_at(&self, mut info: ContainerInfo, now: Instant) {
        let Ok(mut state) = self.inner.lock() else {
            return;
        };
        let full = state.by_id.len() >= state.capacity;
        match state.by_id.get_mut(&info.id) {
            Some((known, seen)) => {
                *seen = now;
                if replaces(&info, known) {
                    info.cgroups_path = info.cgroups_path.or(known.cgroups_path.take());
                    *known = info;
                } else if known.cgroups_path.is_none() {
                    known.cgroups_path = info.cgroups_path;
                }
            }
            None => {
                if full {
                    let gone = state
                        .by_id
                        .iter()
                        .filter(|(_, (_, seen))| now.duration_since(*seen) >= GONE_AFTER)
                        .min_by_key(|(_, (_, seen))| *seen)
                        .map(|(id, _)| id.clone());
                    match gone {
                        Some(id) => {
                            state.by_id.remove(&id);
                        }
                        None => {
                            state.unremembered += 1;
                            if state.unremembered == 1 {
                                warn!(
                                    capacity = state.capacity,
                                    "too many containers to remember: more are reported by id"
                                );
                            }
                            return;
                        }
                    }
                }
                state.by_id.insert(info.id.clone(), (info, now));
            }
        }
    }

    /// Says that the runtime at `socket` is followed: until it completed a
    /// listing, no cgroup is taken for another runtime's.
    pub(crate) fn follows(&self, socket: &Path) {
        if let Ok(mut state) = self.inner.lock() {
            state.listings.entry(socket.to_path_buf()).or_insert(None);
        }
    }

    /// Says that the runtime at `socket` listed all its containers, in a
    /// listing that began at `began`.
    pub(crate) fn listed(&self, socket: &Path, began: Instant) {
        if let Ok(mut state) = self.inner.lock() {
            state.listings.insert(socket.to_path_buf(), Some(began));
        }
    }

    /// Says which pods are this node's (their UIDs).
    pub fn set_local_pods(&self, uids: impl IntoIterator<Item = String>) {
        if let Ok(mut state) = self.inner.lock() {
            state.local_pods = uids.into_iter().collect();
        }
    }

    /// Whether another runtime's containers can be told apart at all:
    /// every followed runtime has listed its containers, and none went
    /// unremembered.
    pub fn decidable(&self) -> bool {
        self.inner
            .lock()
            .is_ok_and(|state| state.can_tell() && state.listings.values().all(Option::is_some))
    }

    /// Whether container `id` (of pod `pod_uid`, as its cgroup path says),
    /// whose cgroup was first seen at `first_seen`, belongs to a runtime
    /// this agent does not follow (on a kernel shared by several nodes,
    /// another node's): no followed runtime knows it, and every one of
    /// them listed its containers (containerd: the namespaces it looks
    /// at) in a listing that began [`FOREIGN_AFTER`] or more after
    /// `first_seen`. Never for a pod of this node, while a runtime has not
    /// listed, nor once containers went unremembered. Once `FOREIGN_AFTER`
    /// has passed, a runtime whose last listing is older is asked for one
    /// now (at most once a second), rather than at its next relisting.
    pub fn foreign(&self, id: &str, pod_uid: Option<&str>, first_seen: Instant) -> bool {
        let Ok(mut state) = self.inner.lock() else {
            return false;
        };
        let settled = first_seen + FOREIGN_AFTER;
        if !state.can_tell()
            || state.by_id.contains_key(id)
            || pod_uid.is_some_and(|uid| state.local_pods.contains(uid))
        {
            return false;
        }
        let listed = state
            .listings
            .values()
            .all(|began| began.is_some_and(|at| at >= settled));
        let now = Instant::now();
        if !listed
            && now >= settled
            && state
                .wanted_at
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            state.wanted_at = Some(now);
            self.wanted.notify_waiters();
        }
        listed
    }

    /// Resolves when a listing is wanted now ([`Containers::foreign`]).
    pub(crate) async fn listing_wanted(&self) {
        self.wanted.notified().await;
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        if let Ok(mut state) = self.inner.lock() {
            if !connected {
                state.failures += 1;
            }
            state.connected = connected;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(namespace: &str, name: Option<&str>, cgroups_path: Option<&str>) -> ContainerInfo {
        ContainerInfo {
            id: "c1".into(),
            runtime_namespace: namespace.into(),
            pod: None,
            pod_namespace: None,
            pod_uid: None,
            container: name.map(str::to_string),
            image: None,
            image_digest: None,
            sandbox: false,
            cgroups_path: cgroups_path.map(str::to_string),
            compose_service: None,
            labels: Default::default(),
        }
    }

    #[test]
    fn dockers_names_win_over_containerds_ids_in_either_order() {
        let moby = entry("moby", None, Some("/docker/c1"));
        let docker = entry(DOCKER, Some("web"), None);
        for order in [[&moby, &docker], [&docker, &moby]] {
            let containers = Containers::default();
            for info in order {
                containers.insert(info.clone());
            }
            let known = containers.get("c1").unwrap();
            assert_eq!(known.container.as_deref(), Some("web"), "{order:?}");
            assert_eq!(
                known.cgroups_path.as_deref(),
                Some("/docker/c1"),
                "{order:?}"
            );
        }
        // A rename through Docker's API still replaces Docker's entry.
        let containers = Containers::default();
        containers.insert(docker.clone());
        containers.insert(entry(DOCKER, Some("web-2"), None));
        assert_eq!(
            containers.get("c1").unwrap().container.as_deref(),
            Some("web-2")
        );
    }

    #[test]
    fn a_container_is_foreign_once_every_runtime_listed_without_it() {
        let containers = Containers::default();
        let seen = Instant::now();
        // No runtime followed: nothing is another runtime's.
        assert!(!containers.foreign("other", None, seen));
        let (a, b) = (Path::new("/run/a.sock"), Path::new("/run/b.sock"));
        containers.follows(a);
        containers.follows(b);
        containers.listed(a, seen + FOREIGN_AFTER);
        // b has not listed yet.
        assert!(!containers.foreign("other", None, seen));
        // b listed, but too soon after the cgroup appeared.
        containers.listed(b, seen + FOREIGN_AFTER / 2);
        assert!(!containers.foreign("other", None, seen));
        containers.listed(b, seen + FOREIGN_AFTER * 2);
        assert!(containers.foreign("other", None, seen));
        // A container a runtime knows is never another's.
        let mut known = entry("k8s.io", Some("web"), None);
        known.id = "mine".into();
        containers.insert(known);
        assert!(!containers.foreign("mine", None, seen));
        // Nor is a container of a pod of this node, known or not.
        containers.set_local_pods(["uid-1".to_string()]);
        assert!(!containers.foreign("other", Some("uid-1"), seen));
        assert!(containers.foreign("other", Some("uid-2"), seen));
    }

    #[tokio::test]
    async fn a_cgroup_past_the_margin_asks_the_runtimes_for_a_listing_now() {
        let containers = Containers::default();
        let socket = Path::new("/run/a.sock");
        containers.follows(socket);
        let seen = Instant::now() - FOREIGN_AFTER * 2;
        containers.listed(socket, seen);
        let waiter = containers.clone();
        let wanted = tokio::spawn(async move { waiter.listing_wanted().await });
        tokio::task::yield_now().await;
        // Within the margin: nothing asked yet.
        assert!(!containers.foreign("other", None, Instant::now()));
        tokio::task::yield_now().await;
        assert!(!wanted.is_finished());
        // Past it, with a listing from before: one is asked for.
        assert!(!containers.foreign("other", None, seen));
        tokio::time::timeout(Duration::from_secs(5), wanted)
            .await
            .expect("a listing asked for")
            .unwrap();
    }

    #[test]
    fn nothing_is_foreign_once_containers_went_unremembered() {
        let containers = Containers::with_capacity(1);
        let seen = Instant::now();
        let socket = Path::new("/run/a.sock");
        containers.follows(socket);
        containers.insert(entry("k8s.io", Some("a"), None));
        let mut second = entry("k8s.io", Some("b"), None);
        second.id = "c2".into();
        containers.insert(second);
        assert_eq!(containers.unremembered(), 1);
        containers.listed(socket, seen + FOREIGN_AFTER);
        assert!(!containers.foreign("c2", None, seen));
    }

    #[test]
    fn when_full_the_container_gone_longest_makes_room() {
        let named = |id: &str| ContainerInfo {
            id: id.into(),
            ..entry(DOCKER, Some(id), None)
        };
        let containers = Containers::with_capacity(2);
        let t0 = Instant::now();
        containers.insert_at(named("a"), t0);
        containers.insert_at(named("b"), t0 + Duration::from_secs(1));
        // Both still listed: the third is not remembered, and counted.
        containers.insert_at(named("c"), t0 + Duration::from_secs(5));
        assert_eq!((containers.len(), containers.unremembered()), (2, 1));
        assert!(containers.get("c").is_none());
        // "b" is listed again, "a" no more: "a" is gone and makes room.
        containers.insert_at(named("b"), t0 + Duration::from_secs(50));
        containers.insert_at(named("c"), t0 + Duration::from_secs(70));
        assert!(containers.get("a").is_none());
        assert!(containers.get("b").is_some() && containers.get("c").is_some());
        assert_eq!(containers.unremembered(), 1);
    }

    #[test]
    fn every_existing_socket_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let containerd = dir.path().join("containerd.sock");
        let docker = dir.path().join("docker.sock");
        std::fs::write(&containerd, "").unwrap();
        std::fs::write(&docker, "").unwrap();
        let link = dir.path().join("var-run");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let missing = dir.path().join("crio.sock");
        let through_link = link.join("docker.sock");
        let found = existing_sockets([
            containerd.as_path(),
            missing.as_path(),
            docker.as_path(),
            through_link.as_path(),
        ]);
        assert_eq!(found, vec![containerd, docker]);
    }
}
