//! Naming containers through the Kubernetes CRI (`k8s-cri`): what CRI-O
//! serves (and containerd too, on its own socket). The pod's name,
//! namespace and UID come from its sandbox, the container's name from its
//! metadata; containers are listed again every second (CRI's event stream
//! is optional), so a container is named within a second of its start.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{Container, ListContainersRequest, ListPodSandboxRequest, PodSandbox};
use tonic::transport::Channel;
use tracing::info;

use super::containers::Containers;
use super::identity::ContainerInfo;

/// How often containers are listed.
const LIST_EVERY: Duration = Duration::from_secs(1);

/// What the runtime says of a pod sandbox (its pause container).
pub fn sandbox_info(sandbox: &PodSandbox) -> ContainerInfo {
    let meta = sandbox.metadata.clone().unwrap_or_default();
    let some = |s: String| (!s.is_empty()).then_some(s);
    ContainerInfo {
        id: sandbox.id.clone(),
        runtime_namespace: "cri".into(),
        pod: some(meta.name),
        pod_namespace: some(meta.namespace),
        pod_uid: some(meta.uid),
        sandbox: true,
        ..ContainerInfo::default()
    }
}

/// What the runtime says of a container, with its pod from `sandboxes`.
pub fn container_info(
    container: &Container,
    sandboxes: &HashMap<String, ContainerInfo>,
) -> ContainerInfo {
    let pod = sandboxes.get(&container.pod_sandbox_id);
    let label = |key: &str| container.labels.get(key).filter(|v| !v.is_empty()).cloned();
    let image = container
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty());
    let digest = container
        .image_ref
        .find("sha256:")
        .map(|at| container.image_ref[at..].to_string());
    ContainerInfo {
        id: container.id.clone(),
        runtime_namespace: "cri".into(),
        pod: pod
            .and_then(|p| p.pod.clone())
            .or_else(|| label("io.kubernetes.pod.name")),
        pod_namespace: pod
            .and_then(|p| p.pod_namespace.clone())
            .or_else(|| label("io.kubernetes.pod.namespace")),
        pod_uid: pod
            .and_then(|p| p.pod_uid.clone())
            .or_else(|| label("io.kubernetes.pod.uid")),
        container: container
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| label("io.kubernetes.container.name")),
        image: image
            .or_else(|| (!container.image_ref.is_empty()).then(|| container.image_ref.clone())),
        image_digest: digest,
        sandbox: false,
        cgroups_path: None,
        compose_service: None,
        labels: Default::default(),
    }
}

/// Lists every sandbox and container into `containers`.
async fn list_all(
    socket: &Path,
    channel: &Channel,
    containers: &Containers,
) -> Result<usize, tonic::Status> {
    let began = Instant::now();
    let mut client = RuntimeServiceClient::new(channel.clone());
    let sandboxes: HashMap<String, ContainerInfo> = client
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await?
        .into_inner()
        .items
        .iter()
        .map(|s| (s.id.clone(), sandbox_info(s)))
        .collect();
    let listed = client
        .list_containers(ListContainersRequest { filter: None })
        .await?
        .into_inner()
        .containers;
    let n = listed.len();
    for info in sandboxes.values() {
        containers.insert(info.clone());
    }
    for container in &listed {
        containers.insert(container_info(container, &sandboxes));
    }
    containers.listed(socket, began);
    Ok(n)
}

/// Follows the runtime through CRI once: lists every second until a
/// listing fails.
pub(super) async fn follow(socket: &Path, containers: &Containers) -> Result<(), String> {
    let channel = containerd_client::connect(socket)
        .await
        .map_err(|e| e.to_string())?;
    let n = list_all(socket, &channel, containers)
        .await
        .map_err(|e| e.to_string())?;
    containers.set_connected(true);
    info!(socket = %socket.display(), containers = n, "following the container runtime through CRI");
    loop {
        tokio::time::sleep(LIST_EVERY).await;
        list_all(socket, &channel, containers)
            .await
            .map_err(|e| e.to_string())?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_cri::v1::{ContainerMetadata, ImageSpec, PodSandboxMetadata};

    #[test]
    fn a_container_is_named_from_its_sandbox() {
        let sandbox = PodSandbox {
            id: "sb1".into(),
            metadata: Some(PodSandboxMetadata {
                name: "web-7d9-abc".into(),
                uid: "uid-1".into(),
                namespace: "shop".into(),
                attempt: 0,
            }),
            ..PodSandbox::default()
        };
        let sandboxes: HashMap<_, _> = [(sandbox.id.clone(), sandbox_info(&sandbox))].into();
        assert!(sandboxes["sb1"].sandbox);
        let container = Container {
            id: "c1".into(),
            pod_sandbox_id: "sb1".into(),
            metadata: Some(ContainerMetadata {
                name: "nginx".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: "docker.io/library/nginx:1.27".into(),
                ..ImageSpec::default()
            }),
            image_ref: "docker.io/library/nginx@sha256:abcd".into(),
            ..Container::default()
        };
        let info = container_info(&container, &sandboxes);
        assert_eq!(info.pod.as_deref(), Some("web-7d9-abc"));
        assert_eq!(info.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(info.pod_uid.as_deref(), Some("uid-1"));
        assert_eq!(info.container.as_deref(), Some("nginx"));
        assert_eq!(info.image.as_deref(), Some("docker.io/library/nginx:1.27"));
        assert_eq!(info.image_digest.as_deref(), Some("sha256:abcd"));
        assert!(!info.sandbox);
    }

    #[test]
    fn without_its_sandbox_the_kubelet_labels_name_it() {
        let container = Container {
            id: "c2".into(),
            pod_sandbox_id: "gone".into(),
            labels: [
                ("io.kubernetes.pod.name".to_string(), "db-0".to_string()),
                (
                    "io.kubernetes.pod.namespace".to_string(),
                    "data".to_string(),
                ),
                (
                    "io.kubernetes.container.name".to_string(),
                    "postgres".to_string(),
                ),
            ]
            .into(),
            ..Container::default()
        };
        let info = container_info(&container, &HashMap::new());
        assert_eq!(info.pod.as_deref(), Some("db-0"));
        assert_eq!(info.pod_namespace.as_deref(), Some("data"));
        assert_eq!(info.container.as_deref(), Some("postgres"));
        assert_eq!(info.image_digest, None);
    }
}
