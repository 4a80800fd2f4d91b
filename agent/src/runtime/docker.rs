//! Docker's Engine API (and Podman's Docker-compatible one): the containers
//! as their users name them (`docker run --name`, Compose's project and
//! service), kept current from the event stream, with relists on reconnect.
//! containerd's `moby` namespace has only ids; names, Compose labels and
//! images live in dockerd's own store, which this reads. On Podman, its own
//! API adds each container's pod ([`super::podman`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::containers::Containers;
use super::identity::{ContainerInfo, MAX_LABEL_VALUE, MAX_LABELS};
use super::podman::{self, PodOf};

/// The `runtime_namespace` of containers named through Docker's API.
pub const DOCKER: &str = "docker";

/// Compose's label naming a container's project.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// Compose's label naming a container's service.
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// Seconds a call to the daemon may take.
const CALL_TIMEOUT: u64 = 30;

/// A safety net: containers are listed again this often even without
/// events (an event missed while the stream was being set up).
const RELIST_EVERY: Duration = Duration::from_secs(10);

/// cri-dockerd's label telling a pod's sandbox (`podsandbox`) from its
/// containers (`container`).
pub const CRI_DOCKERD_TYPE: &str = "io.kubernetes.docker.type";

/// A container's identity from what Docker's API lists: its name (without
/// the leading `/`), image, image digest and Compose labels; a container
/// cri-dockerd made for the kubelet (the kubelet's labels) is its pod's
/// container, as containerd's are.
pub fn identify(
    id: &str,
    names: &[String],
    image: &str,
    image_digest: Option<String>,
    labels: &HashMap<String, String>,
) -> ContainerInfo {
    let name = names
        .iter()
        .map(|n| n.trim_start_matches('/'))
        // A linked container is listed under more names (`/a/b`): its own
        // has no slash left.
        .find(|n| !n.contains('/'))
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if labels.contains_key(super::identity::POD_NAME) {
        let mut info = super::identity::identify(id, DOCKER, image, labels, &HashMap::new(), None);
        info.sandbox = labels
            .get(CRI_DOCKERD_TYPE)
            .is_some_and(|t| t == "podsandbox");
        info.image_digest = image_digest;
        info.labels = bounded_labels(labels);
        return info;
    }
    let label = |key: &str| labels.get(key).filter(|v| !v.is_empty()).cloned();
    let compose = label(COMPOSE_PROJECT).zip(label(COMPOSE_SERVICE));
    ContainerInfo {
        id: id.to_string(),
        runtime_namespace: DOCKER.to_string(),
        pod: None,
        pod_namespace: compose.as_ref().map(|(project, _)| project.clone()),
        pod_uid: None,
        container: name,
        image: (!image.is_empty()).then(|| image.to_string()),
        image_digest,
        sandbox: false,
        cgroups_path: None,
        compose_service: compose.map(|(_, service)| service),
        labels: bounded_labels(labels),
    }
}

/// At most [`MAX_LABELS`] labels (the first by name), each value cut at
/// [`MAX_LABEL_VALUE`] bytes (on a character boundary).
fn bounded_labels(labels: &HashMap<String, String>) -> BTreeMap<String, String> {
    let sorted: BTreeMap<&String, &String> = labels.iter().collect();
    sorted
        .into_iter()
        .take(MAX_LABELS)
        .map(|(k, v)| {
            let mut end = v.len().min(MAX_LABEL_VALUE);
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            (k.clone(), v[..end].to_string())
        })
        .collect()
}

/// The digest an image is known by: its registry digest (`RepoDigests`,
/// after the `@`) when pulled from one, else its content-addressed id.
fn image_digest(repo_digests: &[String], image_id: &str) -> Option<String> {
    repo_digests
        .iter()
        .find_map(|d| d.split_once('@').map(|(_, digest)| digest.to_string()))
        .or_else(|| (!image_id.is_empty()).then(|| image_id.to_string()))
}

/// The daemon behind the socket.
struct Daemon {
    docker: Docker,
    /// Podman's own API, when the daemon is Podman (for pods).
    podman: Option<podman_rest_client::PodmanRestClient>,
    /// Image digests by image id, asked once each.
    digests: HashMap<String, Option<String>>,
}

/// Whether the daemon that answered `version` is Podman (its components
/// name the "Podman Engine").
fn is_podman(version: &bollard::models::SystemVersion) -> bool {
    version
        .components
        .iter()
        .flatten()
        .any(|c| c.name.starts_with("Podman"))
}

/// Lists every container (running or not) into `containers`.
async fn list_all(
    socket: &Path,
    daemon: &mut Daemon,
    containers: &Containers,
) -> Result<usize, String> {
    let began = Instant::now();
    let options = ListContainersOptions {
        all: true,
        ..ListContainersOptions::default()
    };
    let docker = &daemon.docker;
    let digests = &mut daemon.digests;
    let listed = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| e.to_string())?;
    let pods: HashMap<String, PodOf> = match &daemon.podman {
        Some(client) => podman::pods(client).await?,
        None => HashMap::new(),
    };
    let mut n = 0;
    for c in listed {
        let Some(id) = c.id.as_deref() else { continue };
        let image_id = c.image_id.clone().unwrap_or_default();
        if !image_id.is_empty() && !digests.contains_key(&image_id) {
            let repo = docker
                .inspect_image(&image_id)
                .await
                .ok()
                .and_then(|i| i.repo_digests)
                .unwrap_or_default();
            digests.insert(image_id.clone(), image_digest(&repo, &image_id));
        }
        let mut info = identify(
            id,
            c.names.as_deref().unwrap_or_default(),
            c.image.as_deref().unwrap_or_default(),
            digests.get(&image_id).cloned().flatten(),
            &c.labels.unwrap_or_default(),
        );
        if let Some(pod) = pods.get(id) {
            podman::place_in_pod(&mut info, pod);
        }
        containers.insert(info);
        n += 1;
    }
    containers.listed(socket, began);
    Ok(n)
}

/// Follows dockerd (or Podman) once: subscribes to container events, lists
/// everything, then lists again on each create, start or rename, until the
/// connection fails.
pub(super) async fn follow(socket: &Path, containers: &Containers) -> Result<(), String> {
    let docker =
        Docker::connect_with_unix(&socket.to_string_lossy(), CALL_TIMEOUT, API_DEFAULT_VERSION)
            .map_err(|e| e.to_string())?
            // dockerd 20.10 speaks API 1.41: agree on a version both know.
            .negotiate_version()
            .await
            .map_err(|e| e.to_string())?;
    // Subscribe first, so nothing created between the list and the stream
    // is missed.
    let options = EventsOptions {
        filters: Some(HashMap::from([(
            "type".to_string(),
            vec!["container".to_string()],
        )])),
        ..EventsOptions::default()
    };
    let (tx, mut events) = mpsc::channel(256);
    let stream_docker = docker.clone();
    let _stream = crate::task::AbortOnDrop(tokio::spawn(async move {
        let stream = stream_docker.events(Some(options));
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }));
    tokio::task::yield_now().await;
    let version = docker.version().await.map_err(|e| e.to_string())?;
    let podman = if is_podman(&version) {
        Some(podman::connect(socket).await?)
    } else {
        None
    };
    let engine = if podman.is_some() { "Podman" } else { "Docker" };
    let mut daemon = Daemon {
        docker,
        podman,
        digests: HashMap::new(),
    };
    let n = list_all(socket, &mut daemon, containers).await?;
    containers.set_connected(true);
    info!(
        socket = %socket.display(),
        containers = n,
        engine,
        version = version.version.as_deref().unwrap_or("?"),
        "following the container runtime (Docker API)"
    );
    let mut relist = tokio::time::interval(RELIST_EVERY);
    relist.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Ok(event)) => {
                    let action = event.action.unwrap_or_default();
                    debug!(action, "docker event");
                    if ["create", "start", "rename"].contains(&action.as_str()) {
                        list_all(socket, &mut daemon, containers).await?;
                    }
                }
                Some(Err(error)) => return Err(error.to_string()),
                None => return Err("event stream closed".into()),
            },
            _ = relist.tick() => {
                list_all(socket, &mut daemon, containers).await?;
            }
            _ = containers.listing_wanted() => {
                list_all(socket, &mut daemon, containers).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_named_container_is_named_as_its_user_named_it() {
        let info = identify(
            "abc",
            &["/web".into()],
            "nginx:1.27",
            Some("sha256:11".into()),
            &HashMap::new(),
        );
        assert_eq!(info.container.as_deref(), Some("web"));
        assert_eq!(info.runtime_namespace, DOCKER);
        assert_eq!(
            (info.image.as_deref(), info.image_digest.as_deref()),
            (Some("nginx:1.27"), Some("sha256:11"))
        );
        assert_eq!((info.pod_namespace, info.compose_service), (None, None));
    }

    #[test]
    fn compose_labels_make_the_project_and_service() {
        let info = identify(
            "abc",
            &["/other/alias".into(), "/shop-web-2".into()],
            "nginx",
            None,
            &labels(&[(COMPOSE_PROJECT, "shop"), (COMPOSE_SERVICE, "web")]),
        );
        assert_eq!(info.container.as_deref(), Some("shop-web-2"));
        assert_eq!(info.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(info.compose_service.as_deref(), Some("web"));
        // A project label alone is not a service.
        let half = identify("abc", &[], "", None, &labels(&[(COMPOSE_PROJECT, "shop")]));
        assert_eq!((half.pod_namespace, half.compose_service), (None, None));
        assert_eq!((half.container, half.image), (None, None));
    }

    #[test]
    fn labels_are_kept_bounded() {
        let mut many: HashMap<String, String> = (0..100)
            .map(|i| (format!("l{i:03}"), "v".to_string()))
            .collect();
        many.insert("a-long".into(), "é".repeat(MAX_LABEL_VALUE));
        let info = identify("abc", &["/web".into()], "nginx", None, &many);
        assert_eq!(info.labels.len(), MAX_LABELS);
        assert!(info.labels["a-long"].len() <= MAX_LABEL_VALUE);
        assert_eq!(info.labels.keys().nth(1).map(String::as_str), Some("l000"));
    }

    #[test]
    fn cri_dockerds_containers_are_their_pods() {
        let kubelet = labels(&[
            ("io.kubernetes.pod.name", "web-7d4b9c-x2x"),
            ("io.kubernetes.pod.namespace", "shop"),
            (
                "io.kubernetes.pod.uid",
                "8a7c4a3e-1b2c-4d5e-9f00-112233445566",
            ),
            ("io.kubernetes.container.name", "nginx"),
            (CRI_DOCKERD_TYPE, "container"),
        ]);
        let info = identify(
            "abc",
            &["/k8s_nginx_web-7d4b9c-x2x_shop_8a7c4a3e-1b2c-4d5e-9f00-112233445566_0".into()],
            "nginx:1.27",
            Some("sha256:11".into()),
            &kubelet,
        );
        assert_eq!(
            (
                info.pod_namespace.as_deref(),
                info.pod.as_deref(),
                info.container.as_deref()
            ),
            (Some("shop"), Some("web-7d4b9c-x2x"), Some("nginx"))
        );
        assert_eq!(info.image_digest.as_deref(), Some("sha256:11"));
        assert!(!info.sandbox);
        let mut sandbox = kubelet.clone();
        sandbox.insert(CRI_DOCKERD_TYPE.into(), "podsandbox".into());
        sandbox.remove("io.kubernetes.container.name");
        assert!(identify("def", &["/k8s_POD_web".into()], "pause", None, &sandbox).sandbox);
    }

    #[test]
    fn podman_is_told_by_its_components() {
        let version = |names: &[&str]| bollard::models::SystemVersion {
            components: Some(
                names
                    .iter()
                    .map(|n| bollard::models::SystemVersionComponents {
                        name: n.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(is_podman(&version(&["Podman Engine", "Conmon"])));
        assert!(!is_podman(&version(&["Engine", "containerd", "runc"])));
        assert!(!is_podman(&bollard::models::SystemVersion::default()));
    }

    #[test]
    fn the_registry_digest_wins_over_the_image_id() {
        assert_eq!(
            image_digest(&["nginx@sha256:aa".into()], "sha256:bb").as_deref(),
            Some("sha256:aa")
        );
        assert_eq!(image_digest(&[], "sha256:bb").as_deref(), Some("sha256:bb"));
        assert_eq!(image_digest(&[], ""), None);
    }
}
