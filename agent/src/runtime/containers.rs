//! The containers the runtime named, by container id: filled by whichever
//! runtime API follows the socket (containerd's or the CRI), read by every
//! command that turns a cgroup into a container; and where that socket is.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::identity::ContainerInfo;

/// Default sockets, in the order they are tried: containerd, k3s, CRI-O,
/// Docker, Podman. (A Docker host usually runs containerd too, whose
/// socket comes first and names Docker's containers by id only: pass
/// `--runtime-socket /var/run/docker.sock` there.)
pub const DEFAULT_SOCKETS: [&str; 5] = [
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
];

/// The first default socket that exists.
pub fn default_socket() -> Option<PathBuf> {
    DEFAULT_SOCKETS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Bound on containers remembered (exited ones are kept for late events).
const MAX_CONTAINERS: usize = 16_384;

/// Containers by id, shared between the watcher task and the recorder.
#[derive(Clone, Debug, Default)]
pub struct Containers {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    by_id: HashMap<String, ContainerInfo>,
    connected: bool,
    failures: u64,
}

impl Containers {
    /// The container with this id, if the runtime told about it.
    pub fn get(&self, id: &str) -> Option<ContainerInfo> {
        self.inner.lock().ok()?.by_id.get(id).cloned()
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

    pub(crate) fn insert(&self, info: ContainerInfo) {
        if let Ok(mut state) = self.inner.lock()
            && (state.by_id.len() < MAX_CONTAINERS || state.by_id.contains_key(&info.id))
        {
            state.by_id.insert(info.id.clone(), info);
        }
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
