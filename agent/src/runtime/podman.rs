//! Podman's own API (libpod), beside its Docker-compatible one: which pod
//! a container is in, and whether it is that pod's infra container, which
//! the compatible API does not tell. Podman 4 and 5 both answer the libpod
//! paths asked here.

use std::collections::HashMap;
use std::path::Path;

use podman_rest_client::v5::params::ContainerListLibpod;
use podman_rest_client::{Config, PodmanRestClient};

use super::identity::ContainerInfo;

/// A Podman container's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodOf {
    /// The pod's id.
    pub id: String,
    /// The pod's name.
    pub name: String,
    /// Whether the container is the pod's infra container (its pause).
    pub infra: bool,
}

/// A client of Podman's libpod API on `socket`.
pub async fn connect(socket: &Path) -> Result<PodmanRestClient, String> {
    PodmanRestClient::new(Config {
        uri: format!("unix://{}", socket.display()),
        identity_file: None,
    })
    .await
    .map_err(|e| e.to_string())
}

/// The pods of every container in one (running or not), by container id.
pub async fn pods(client: &PodmanRestClient) -> Result<HashMap<String, PodOf>, String> {
    let params = ContainerListLibpod {
        all: Some(true),
        ..ContainerListLibpod::default()
    };
    let listed = client
        .v5()
        .containers()
        .container_list_libpod(Some(params))
        .await
        .map_err(|e| e.to_string())?;
    Ok(listed
        .into_iter()
        .filter_map(|c| {
            let pod = PodOf {
                id: c.pod.filter(|p| !p.is_empty())?,
                name: c.pod_name.filter(|p| !p.is_empty())?,
                infra: c.is_infra.unwrap_or(false),
            };
            Some((c.id?, pod))
        })
        .collect())
}

/// `info` as a container of `pod`: the pod's name and id, and an infra
/// container is the pod's sandbox (no report, as a Kubernetes pause).
pub fn place_in_pod(info: &mut ContainerInfo, pod: &PodOf) {
    info.pod = Some(pod.name.clone());
    info.pod_uid = Some(pod.id.clone());
    info.sandbox = pod.infra;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_container_is_named_by_its_pod_and_its_infra_is_the_sandbox() {
        let mut info = super::super::docker::identify(
            "abc",
            &["/shop-api".into()],
            "busybox",
            None,
            &HashMap::new(),
        );
        let pod = PodOf {
            id: "p1".into(),
            name: "shop".into(),
            infra: false,
        };
        place_in_pod(&mut info, &pod);
        assert_eq!(
            (
                info.pod.as_deref(),
                info.pod_uid.as_deref(),
                info.container.as_deref(),
                info.sandbox
            ),
            (Some("shop"), Some("p1"), Some("shop-api"), false)
        );
        place_in_pod(&mut info, &PodOf { infra: true, ..pod });
        assert!(info.sandbox);
    }
}
