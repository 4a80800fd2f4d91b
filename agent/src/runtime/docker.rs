//! Docker's Engine API (and Podman's Docker-compatible one): the containers
//! as their users name them (`docker run --name`, Compose's project and
//! service), kept current from the event stream, with relists on reconnect.
//! containerd's `moby` namespace has only ids; names, Compose labels and
//! images live in dockerd's own store, which this reads.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::containers::Containers;
use super::identity::ContainerInfo;

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

/// A container's identity from what Docker's API lists: its name (without
/// the leading `/`), image, image digest and Compose labels.
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
    }
}

/// The digest an image is known by: its registry digest (`RepoDigests`,
/// after the `@`) when pulled from one, else its content-addressed id.
fn image_digest(repo_digests: &[String], image_id: &str) -> Option<String> {
    repo_digests
        .iter()
        .find_map(|d| d.split_once('@').map(|(_, digest)| digest.to_string()))
        .or_else(|| (!image_id.is_empty()).then(|| image_id.to_string()))
}

/// Lists every container (running or not) into `containers`.
async fn list_all(
    docker: &Docker,
    containers: &Containers,
    digests: &mut HashMap<String, Option<String>>,
) -> Result<usize, bollard::errors::Error> {
    let options = ListContainersOptions {
        all: true,
        ..ListContainersOptions::default()
    };
    let listed = docker.list_containers(Some(options)).await?;
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
        let info = identify(
            id,
            c.names.as_deref().unwrap_or_default(),
            c.image.as_deref().unwrap_or_default(),
            digests.get(&image_id).cloned().flatten(),
            &c.labels.unwrap_or_default(),
        );
        containers.insert(info);
        n += 1;
    }
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
    let mut digests = HashMap::new();
    let n = list_all(&docker, containers, &mut digests)
        .await
        .map_err(|e| e.to_string())?;
    containers.set_connected(true);
    info!(socket = %socket.display(), containers = n, "following the container runtime (Docker API)");
    let mut relist = tokio::time::interval(RELIST_EVERY);
    relist.tick().await;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Ok(event)) => {
                    let action = event.action.unwrap_or_default();
                    debug!(action, "docker event");
                    if ["create", "start", "rename"].contains(&action.as_str()) {
                        list_all(&docker, containers, &mut digests).await.map_err(|e| e.to_string())?;
                    }
                }
                Some(Err(error)) => return Err(error.to_string()),
                None => return Err("event stream closed".into()),
            },
            _ = relist.tick() => {
                list_all(&docker, containers, &mut digests).await.map_err(|e| e.to_string())?;
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
    fn the_registry_digest_wins_over_the_image_id() {
        assert_eq!(
            image_digest(&["nginx@sha256:aa".into()], "sha256:bb").as_deref(),
            Some("sha256:aa")
        );
        assert_eq!(image_digest(&[], "sha256:bb").as_deref(), Some("sha256:bb"));
        assert_eq!(image_digest(&[], ""), None);
    }
}
