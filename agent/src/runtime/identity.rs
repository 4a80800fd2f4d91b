//! Who a container is, from what containerd stores about it: the CRI
//! annotations containerd always writes into the OCI spec
//! (`io.kubernetes.cri.sandbox-name`, ...) and the kubelet's labels
//! (`io.kubernetes.pod.name`, ...) when the kubelet passed them.

use std::collections::HashMap;

/// A container as the runtime knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Runtime's container id.
    pub id: String,
    /// containerd namespace (`k8s.io`, `moby`, `default`).
    pub runtime_namespace: String,
    /// Pod name.
    pub pod: Option<String>,
    /// Pod namespace.
    pub pod_namespace: Option<String>,
    /// Pod UID.
    pub pod_uid: Option<String>,
    /// Container name in the pod.
    pub container: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// Image digest (`sha256:...`), filled from the image store.
    pub image_digest: Option<String>,
    /// The pod sandbox (pause) container rather than a workload container.
    pub sandbox: bool,
    /// cgroup path from the OCI spec (`linux.cgroupsPath`).
    pub cgroups_path: Option<String>,
    /// Compose's service, for a container Compose made (its project is
    /// then in `pod_namespace`): the workload its replicas share.
    pub compose_service: Option<String>,
    /// The container's own labels, as Docker's API lists them (bounded:
    /// [`MAX_LABELS`]); empty for the other runtimes.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Labels kept per container, at most (the first by name); a value is cut
/// at [`MAX_LABEL_VALUE`] bytes.
pub const MAX_LABELS: usize = 64;
/// Bytes of a label value kept.
pub const MAX_LABEL_VALUE: usize = 1024;

const CRI_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
const CRI_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
const CRI_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
/// The kubelet's label naming a container's pod (also on the Docker
/// containers cri-dockerd makes).
pub const POD_NAME: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const POD_UID: &str = "io.kubernetes.pod.uid";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// Builds the identity of a container from its labels and its OCI spec's
/// annotations (either may be empty); the kubelet's labels win over the
/// CRI annotations when both are there.
pub fn identify(
    id: &str,
    runtime_namespace: &str,
    image: &str,
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
    cgroups_path: Option<String>,
) -> ContainerInfo {
    let pick = |label: &str, annotation: &str| {
        labels
            .get(label)
            .or_else(|| annotations.get(annotation))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    ContainerInfo {
        id: id.to_string(),
        runtime_namespace: runtime_namespace.to_string(),
        pod: pick(POD_NAME, CRI_SANDBOX_NAME),
        pod_namespace: pick(POD_NAMESPACE, CRI_SANDBOX_NAMESPACE),
        pod_uid: pick(POD_UID, CRI_SANDBOX_UID),
        container: pick(CONTAINER_NAME, CRI_CONTAINER_NAME),
        image: annotations
            .get(CRI_IMAGE_NAME)
            .cloned()
            .or_else(|| (!image.is_empty()).then(|| image.to_string())),
        image_digest: None,
        sandbox: annotations
            .get(CRI_CONTAINER_TYPE)
            .is_some_and(|t| t == "sandbox"),
        cgroups_path,
        compose_service: None,
        labels: Default::default(),
    }
}

/// Annotations and `linux.cgroupsPath` of an OCI runtime spec in JSON (as
/// containerd stores it); empty when the spec cannot be read.
pub fn spec_fields(spec_json: &[u8]) -> (HashMap<String, String>, Option<String>) {
    match serde_json::from_slice::<oci_spec::runtime::Spec>(spec_json) {
        Ok(spec) => (
            spec.annotations().clone().unwrap_or_default(),
            spec.linux()
                .as_ref()
                .and_then(|l| l.cgroups_path().as_ref())
                .map(|p| p.display().to_string()),
        ),
        Err(_) => (HashMap::new(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cri_annotations_alone_identify_a_pod_container() {
        let annotations = map(&[
            (CRI_SANDBOX_NAME, "web-7d4b9c-x2x"),
            (CRI_SANDBOX_NAMESPACE, "shop"),
            (CRI_SANDBOX_UID, "8a7c4a3e-1b2c-4d5e-9f00-112233445566"),
            (CRI_CONTAINER_NAME, "nginx"),
            (CRI_CONTAINER_TYPE, "container"),
            (CRI_IMAGE_NAME, "docker.io/library/nginx:1.27"),
        ]);
        let info = identify(
            "abc",
            "k8s.io",
            "sha256:ffff",
            &HashMap::new(),
            &annotations,
            None,
        );
        assert_eq!(info.pod.as_deref(), Some("web-7d4b9c-x2x"));
        assert_eq!(info.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(info.container.as_deref(), Some("nginx"));
        assert_eq!(info.image.as_deref(), Some("docker.io/library/nginx:1.27"));
        assert!(!info.sandbox);
    }

    #[test]
    fn kubelet_labels_win_and_sandboxes_are_marked() {
        let labels = map(&[(POD_NAME, "from-label"), (CONTAINER_NAME, "app")]);
        let annotations = map(&[
            (CRI_SANDBOX_NAME, "from-annotation"),
            (CRI_CONTAINER_TYPE, "sandbox"),
        ]);
        let info = identify("abc", "k8s.io", "pause:3.10", &labels, &annotations, None);
        assert_eq!(
            (info.pod.as_deref(), info.container.as_deref()),
            (Some("from-label"), Some("app"))
        );
        assert!(info.sandbox);
        assert_eq!(info.image.as_deref(), Some("pause:3.10"));
    }

    #[test]
    fn reads_annotations_and_cgroups_path_from_a_spec() {
        let spec = br#"{"ociVersion":"1.1.0","annotations":{"io.kubernetes.cri.sandbox-name":"p"},
            "linux":{"cgroupsPath":"/kubepods/besteffort/podx/abc"}}"#;
        let (annotations, path) = spec_fields(spec);
        assert_eq!(annotations[CRI_SANDBOX_NAME], "p");
        assert_eq!(path.as_deref(), Some("/kubepods/besteffort/podx/abc"));
        assert_eq!(spec_fields(b"not json"), (HashMap::new(), None));
    }
}
