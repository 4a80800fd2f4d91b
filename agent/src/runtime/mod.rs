//! Resolving a cgroup to the container and pod in it.

pub mod cgroup_path;
pub mod containerd;
pub mod containers;
pub mod cri;
pub mod docker;
pub mod identity;
pub mod podman;

use std::path::{Path, PathBuf};
use std::time::Duration;

use imprint_crd::report::Subject;
use tracing::{debug, warn};

use self::cgroup_path::PathIdentity;
pub use self::containers::{Containers, default_sockets};
use self::identity::ContainerInfo;

/// Which API names containers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeApi {
    /// containerd's own API for a containerd socket, CRI for CRI-O's,
    /// Docker's for a Docker or Podman socket.
    #[default]
    Auto,
    /// containerd's API (namespaces k8s.io, moby, default; event stream).
    Containerd,
    /// The Kubernetes CRI (CRI-O; containerd serves it too).
    Cri,
    /// Docker's Engine API (dockerd, or Podman's compatible socket):
    /// containers by the names their users gave them, Compose services.
    Docker,
}

impl RuntimeApi {
    /// The API to use on `socket`.
    pub fn for_socket(self, socket: &Path) -> RuntimeApi {
        match self {
            RuntimeApi::Auto if socket.to_string_lossy().contains("crio") => RuntimeApi::Cri,
            RuntimeApi::Auto
                if socket
                    .file_name()
                    .is_some_and(|f| f == "docker.sock" || f == "podman.sock") =>
            {
                RuntimeApi::Docker
            }
            RuntimeApi::Auto => RuntimeApi::Containerd,
            chosen => chosen,
        }
    }
}

/// Follows the runtime at `socket` into `containers` until dropped:
/// containerd's event stream, or CRI listings; reconnects with a back-off
/// (200 ms doubling to 5 s) when the socket goes away.
pub async fn follow(socket: PathBuf, api: RuntimeApi, containers: Containers) {
    containers.follows(&socket);
    match api.for_socket(&socket) {
        RuntimeApi::Cri => keep_following(&socket, &containers, "CRI", cri::follow).await,
        RuntimeApi::Docker => keep_following(&socket, &containers, "Docker", docker::follow).await,
        _ => keep_following(&socket, &containers, "containerd", containerd::follow).await,
    }
}

/// Runs `follow` again and again; says once that the runtime is
/// unreachable (and that cgroups are reported by path meanwhile).
async fn keep_following<'a, F, Fut>(
    socket: &'a Path,
    containers: &'a Containers,
    api: &str,
    follow: F,
) where
    F: Fn(&'a Path, &'a Containers) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut delay = Duration::from_millis(200);
    let mut warned = false;
    loop {
        match follow(socket, containers).await {
            Ok(()) => delay = Duration::from_millis(200),
            Err(error) => {
                containers.set_connected(false);
                if !warned {
                    let missing = if socket.exists() {
                        ""
                    } else {
                        " (no such socket file)"
                    };
                    warn!(
                        socket = %socket.display(),
                        api,
                        error = %format!("{error}{missing}"),
                        "container runtime unreachable: cgroups are reported by path until it answers"
                    );
                    warned = true;
                } else {
                    debug!(%error, api, "container runtime still unreachable");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// What a recorded cgroup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A container: what its cgroup path says, and what the runtime told
    /// (`None` when the runtime did not know it, or was unreachable).
    Container(PathIdentity, Option<Box<ContainerInfo>>),
    /// Host processes (a cgroup path with no container id in it).
    Host,
}

/// Classifies the cgroup at `path`: the container it belongs to is the
/// deepest container cgroup at or above it that the runtime says it made
/// (a child cgroup the container made belongs to it; a child named after
/// another container does not). A container the runtime does not know (yet)
/// is the deepest one named.
pub fn classify(path: &str, containers: &Containers) -> Holder {
    let candidates = cgroup_path::candidates(path);
    let Some(deepest) = candidates.first().cloned() else {
        return Holder::Host;
    };
    for identity in candidates {
        if let Some(info) = containers.get(&identity.container_id)
            && made_for(&identity, &info)
        {
            return Holder::Container(identity, Some(Box::new(info)));
        }
    }
    Holder::Container(deepest, None)
}

/// Whether the cgroup `identity` names is the one the runtime made for
/// container `info`: by the cgroup path the runtime reports; where it
/// reports none (the CRI), by the pod UID in the path, which then must be
/// the container's pod's.
fn made_for(identity: &PathIdentity, info: &ContainerInfo) -> bool {
    match &info.cgroups_path {
        Some(path) => cgroup_path::made_by_runtime(identity, path),
        None => match (&identity.pod_uid, &info.pod_uid) {
            (Some(in_path), Some(pod)) => in_path == pod,
            _ => true,
        },
    }
}

/// Which cgroups get a report.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only pods of these namespaces (all when empty).
    pub namespaces: Vec<String>,
    /// Never pods of these namespaces.
    pub exclude_namespaces: Vec<String>,
    /// Leave out host cgroups (no container in them).
    pub no_host: bool,
}

impl Filter {
    /// Whether a cgroup with this holder gets a report. Pod sandboxes
    /// (pause) never do: their behavior is the runtime's, not the workload's.
    pub fn keeps(&self, holder: &Holder) -> bool {
        match holder {
            Holder::Host => !self.no_host,
            Holder::Container(_, Some(info)) if info.sandbox => false,
            Holder::Container(_, info) => {
                let namespace = info.as_ref().and_then(|i| i.pod_namespace.as_deref());
                let included = self.namespaces.is_empty()
                    || namespace.is_some_and(|n| self.namespaces.iter().any(|x| x == n));
                let excluded =
                    namespace.is_some_and(|n| self.exclude_namespaces.iter().any(|x| x == n));
                included && !excluded
            }
        }
    }
}

/// The report subject of a cgroup.
pub fn subject(path: &str, holder: &Holder, node: Option<String>) -> Subject {
    let mut subject = Subject {
        node,
        cgroup: Some(path.to_string()),
        ..Subject::default()
    };
    if let Holder::Container(identity, info) = holder {
        // A child cgroup is reported as its container.
        subject.cgroup = Some(identity.cgroup.clone());
        subject.container_id = Some(identity.container_id.clone());
        subject.pod_uid = identity.pod_uid.clone();
        if let Some(info) = info {
            subject.namespace = info.pod_namespace.clone();
            subject.pod = info.pod.clone();
            subject.pod_uid = info.pod_uid.clone().or(subject.pod_uid.take());
            subject.container = info.container.clone();
            subject.image = info.image.clone();
            subject.image_digest = info.image_digest.clone();
            subject.labels = info.labels.clone();
            if let Some(service) = &info.compose_service {
                subject.workload = Some(imprint_crd::report::WorkloadRef {
                    kind: COMPOSE_SERVICE_KIND.into(),
                    name: service.clone(),
                });
            }
        }
    }
    subject
}

/// The workload kind of a Compose service's containers (their project is
/// the subject's namespace).
pub const COMPOSE_SERVICE_KIND: &str = "ComposeService";

/// File stem of a report: `<namespace>_<pod>_<container>` for a resolved
/// pod container, `<project>_<service>_<name>` for a Compose container,
/// `<pod>_<name>` for a container of a Podman pod, `<name>` for a named
/// Docker or Podman container, else the cgroup path made file-name safe.
pub fn report_stem(path: &str, subject: &Subject) -> String {
    let service = subject
        .workload
        .as_ref()
        .filter(|w| w.kind == COMPOSE_SERVICE_KIND);
    match (
        &subject.namespace,
        &subject.pod,
        &subject.container,
        service,
    ) {
        (Some(ns), Some(pod), Some(container), _) => {
            crate::cgroups::file_stem(&format!("{ns}_{pod}_{container}"))
        }
        // Compose: <project>_<service>_<container name>.
        (Some(project), None, Some(container), Some(service)) => {
            crate::cgroups::file_stem(&format!("{project}_{}_{container}", service.name))
        }
        // A container of a Podman pod: <pod>_<container>.
        (None, Some(pod), Some(container), None) => {
            crate::cgroups::file_stem(&format!("{pod}_{container}"))
        }
        // A container named by its user (`docker run --name`).
        (None, None, Some(container), None) => crate::cgroups::file_stem(container),
        _ => crate::cgroups::file_stem(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1c2b8a9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";

    fn pod_info(namespace: &str, sandbox: bool) -> ContainerInfo {
        ContainerInfo {
            id: ID.into(),
            runtime_namespace: "k8s.io".into(),
            pod: Some("web-1".into()),
            pod_namespace: Some(namespace.into()),
            pod_uid: Some("uid-1".into()),
            container: Some("nginx".into()),
            image: Some("nginx:1.27".into()),
            image_digest: Some("sha256:ab".into()),
            sandbox,
            cgroups_path: None,
            compose_service: None,
            labels: Default::default(),
        }
    }

    #[test]
    fn the_api_follows_the_socket() {
        let api = |s: &str| RuntimeApi::Auto.for_socket(Path::new(s));
        assert_eq!(api("/run/crio/crio.sock"), RuntimeApi::Cri);
        assert_eq!(
            api("/run/containerd/containerd.sock"),
            RuntimeApi::Containerd
        );
        assert_eq!(
            RuntimeApi::Cri.for_socket(Path::new("/run/containerd/containerd.sock")),
            RuntimeApi::Cri
        );
        for socket in [
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/run/podman/podman.sock",
        ] {
            assert_eq!(api(socket), RuntimeApi::Docker, "{socket}");
        }
    }

    #[test]
    fn resolved_containers_get_pod_identity_and_names() {
        let path = format!("/kubepods/besteffort/poduid/{ID}");
        let identity = cgroup_path::parse(&path).unwrap();
        let holder = Holder::Container(identity, Some(Box::new(pod_info("shop", false))));
        let s = subject(&path, &holder, Some("node-1".into()));
        assert_eq!(
            (
                s.namespace.as_deref(),
                s.pod.as_deref(),
                s.container.as_deref()
            ),
            (Some("shop"), Some("web-1"), Some("nginx"))
        );
        assert_eq!(
            (s.container_id.as_deref(), s.image_digest.as_deref()),
            (Some(ID), Some("sha256:ab"))
        );
        assert_eq!(report_stem(&path, &s), "shop_web-1_nginx");
    }

    #[test]
    fn docker_containers_are_named_by_name_and_compose_service() {
        let path = format!("/system.slice/docker-{ID}.scope");
        let identity = cgroup_path::parse(&path).unwrap();
        let named = docker::identify(ID, &["/web".into()], "nginx", None, &Default::default());
        let holder = Holder::Container(identity.clone(), Some(Box::new(named)));
        let s = subject(&path, &holder, None);
        assert_eq!((s.container.as_deref(), &s.workload), (Some("web"), &None));
        assert_eq!(report_stem(&path, &s), "web");

        let labels = [
            (docker::COMPOSE_PROJECT.to_string(), "shop".to_string()),
            (docker::COMPOSE_SERVICE.to_string(), "api".to_string()),
        ]
        .into();
        let composed = docker::identify(ID, &["/shop-api-1".into()], "api", None, &labels);
        let holder = Holder::Container(identity, Some(Box::new(composed)));
        let s = subject(&path, &holder, None);
        let workload = s.workload.clone().unwrap();
        assert_eq!(
            (
                s.namespace.as_deref(),
                workload.kind.as_str(),
                workload.name.as_str()
            ),
            (Some("shop"), COMPOSE_SERVICE_KIND, "api")
        );
        assert_eq!(report_stem(&path, &s), "shop_api_shop-api-1");

        // The Compose project is the namespace the filters choose by.
        let filter = Filter {
            namespaces: vec!["shop".into()],
            ..Filter::default()
        };
        assert!(filter.keeps(&holder));

        // A container of a Podman pod: <pod>_<name>.
        let mut in_pod =
            docker::identify(ID, &["/shop-api".into()], "api", None, &Default::default());
        podman::place_in_pod(
            &mut in_pod,
            &podman::PodOf {
                id: "p1".into(),
                name: "shop".into(),
                infra: false,
            },
        );
        let podman_path = format!("/libpod_parent/libpod-{ID}");
        let holder = Holder::Container(
            cgroup_path::parse(&podman_path).unwrap(),
            Some(Box::new(in_pod)),
        );
        let s = subject(&podman_path, &holder, None);
        assert_eq!(report_stem(&podman_path, &s), "shop_shop-api");
    }

    #[test]
    fn unresolved_containers_keep_their_path_and_id() {
        let path = format!("/kubepods/besteffort/pod8a7c4a3e-1b2c-4d5e-9f00-112233445566/{ID}");
        let holder = Holder::Container(cgroup_path::parse(&path).unwrap(), None);
        let s = subject(&path, &holder, None);
        assert_eq!(s.container_id.as_deref(), Some(ID));
        assert_eq!(
            s.pod_uid.as_deref(),
            Some("8a7c4a3e-1b2c-4d5e-9f00-112233445566")
        );
        assert_eq!(s.pod, None);
        assert!(report_stem(&path, &s).starts_with("kubepods_besteffort_pod"));
    }

    #[test]
    fn children_belong_to_the_container_the_runtime_made_their_parent_for() {
        let uid = "8a7c4a3e-1b2c-4d5e-9f00-112233445566";
        let own = format!("/kubepods/burstable/pod{uid}/{ID}");
        let victim_id = ID.replace('3', "4");
        let containers = Containers::default();
        let mut attacker = pod_info("shop", false);
        attacker.pod_uid = Some(uid.into());
        attacker.cgroups_path = Some(own.clone());
        containers.insert(attacker);
        let mut victim = pod_info("bank", false);
        victim.id = victim_id.clone();
        victim.pod = Some("vault-0".into());
        victim.cgroups_path = Some(format!(
            "/kubepods/burstable/pod{}/{victim_id}",
            uid.replace('8', "9")
        ));
        containers.insert(victim);

        // systemd in the container made a child: still the container.
        let child = format!("{own}/init.scope");
        match classify(&child, &containers) {
            Holder::Container(identity, Some(info)) => {
                assert_eq!(
                    (identity.cgroup.as_str(), info.id.as_str()),
                    (own.as_str(), ID)
                );
                assert_eq!(
                    subject(&child, &classify(&child, &containers), None).cgroup,
                    Some(own.clone())
                );
            }
            other => panic!("a child cgroup is its container's: {other:?}"),
        }
        // A child named after another pod's container is not that container.
        let forged = format!("{own}/cri-containerd-{victim_id}.scope");
        match classify(&forged, &containers) {
            Holder::Container(_, Some(info)) => assert_eq!(info.pod.as_deref(), Some("web-1")),
            other => panic!("a forged child is its maker's: {other:?}"),
        }
        // The victim's own cgroup is still the victim's.
        let real = format!(
            "/kubepods/burstable/pod{}/{victim_id}",
            uid.replace('8', "9")
        );
        match classify(&real, &containers) {
            Holder::Container(_, Some(info)) => assert_eq!(info.pod.as_deref(), Some("vault-0")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn filters() {
        let identity = cgroup_path::parse(&format!("/x/{ID}")).unwrap();
        let shop = Holder::Container(identity.clone(), Some(Box::new(pod_info("shop", false))));
        let system = Holder::Container(
            identity.clone(),
            Some(Box::new(pod_info("kube-system", false))),
        );
        let sandbox = Holder::Container(identity.clone(), Some(Box::new(pod_info("shop", true))));
        let unknown = Holder::Container(identity, None);
        let all = Filter::default();
        assert!(all.keeps(&shop) && all.keeps(&unknown) && all.keeps(&Holder::Host));
        assert!(!all.keeps(&sandbox), "pause containers get no report");
        let only_shop = Filter {
            namespaces: vec!["shop".into()],
            no_host: true,
            ..Filter::default()
        };
        assert!(
            only_shop.keeps(&shop) && !only_shop.keeps(&system) && !only_shop.keeps(&Holder::Host)
        );
        assert!(
            !only_shop.keeps(&unknown),
            "an unresolved container has no namespace to match"
        );
        let not_system = Filter {
            exclude_namespaces: vec!["kube-system".into()],
            ..Filter::default()
        };
        assert!(
            not_system.keeps(&shop) && !not_system.keeps(&system) && not_system.keeps(&unknown)
        );
    }
}
