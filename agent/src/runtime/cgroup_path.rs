//! What a cgroup path says about the container in it: the runtime, the
//! container id and, under Kubernetes, the pod UID and QoS class. This is
//! the first step of resolving a cgroup id to a pod; the runtime's API
//! fills in names, namespace and image.
//!
//! Shapes understood (anywhere in the path, so nested setups such as kind
//! nodes work too):
//! - cgroupfs driver: `/kubepods/<qos>/pod<uid>/<id>`, `/kubepods/pod<uid>/<id>`
//! - systemd driver: `kubepods-<qos>-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope`
//! - CRI-O: `crio-<id>.scope`, `.../pod<uid>/crio-<id>` (`crio-conmon-*` is the monitor, not the container)
//! - Docker: `docker-<id>.scope`, `/docker/<id>`
//! - Podman: `libpod-<id>.scope` (systemd), `/libpod_parent/libpod-<id>`
//!   (cgroupfs), also below a pod's cgroup (`libpod-conmon-*` is the
//!   monitor, not the container)
//! - containerd without Kubernetes: `/<namespace>/<id>` (`ctr run`), `cri-containerd-<id>.scope`

/// The runtime that made a container's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd (CRI or `ctr`).
    Containerd,
    /// CRI-O.
    CriO,
    /// Docker (or cri-dockerd).
    Docker,
    /// Podman.
    Podman,
    /// A 64-hex id under a pod, runtime not told by the path.
    Unknown,
}

/// Kubernetes QoS class of a pod, from its cgroup parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qos {
    /// `guaranteed` pods sit directly below kubepods.
    Guaranteed,
    /// `burstable`.
    Burstable,
    /// `besteffort`.
    BestEffort,
}

/// What the path tells about the container.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathIdentity {
    /// Runtime that named the cgroup.
    pub runtime: Runtime,
    /// Container id (64 hex characters for every runtime here).
    pub container_id: String,
    /// Pod UID (with dashes), under Kubernetes.
    pub pod_uid: Option<String>,
    /// QoS class, under Kubernetes.
    pub qos: Option<Qos>,
    /// containerd namespace for `/<namespace>/<id>` paths.
    pub namespace: Option<String>,
    /// The container's own cgroup: the path up to the component that
    /// names it (a child cgroup the container made lies below it).
    pub cgroup: String,
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A container id behind a runtime's prefix and suffix.
fn id_in(component: &str) -> Option<(Runtime, &str)> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    let candidates = [
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
    ];
    for (prefix, runtime) in candidates {
        if let Some(id) = name.strip_prefix(prefix)
            && is_container_id(id)
        {
            return Some((runtime, id));
        }
    }
    None
}

/// The pod UID of a `pod<uid>` or `kubepods-<qos>-pod<uid>.slice` component.
fn pod_uid_in(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let uid = name
        .rsplit_once("-pod")
        .map(|(_, u)| u)
        .or_else(|| name.strip_prefix("pod"))?;
    let uid = uid.replace('_', "-");
    let valid = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    valid.then_some(uid)
}

fn qos_in(component: &str) -> Option<Qos> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    if name.ends_with("besteffort") || name.contains("-besteffort-") {
        Some(Qos::BestEffort)
    } else if name.ends_with("burstable") || name.contains("-burstable-") {
        Some(Qos::Burstable)
    } else {
        None
    }
}

/// Parses a cgroup path (as in `/proc/<pid>/cgroup`, relative to the
/// unified root) whose last component names a container. `None` when it
/// does not.
pub fn parse(path: &str) -> Option<PathIdentity> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    parse_parts(&parts)
}

/// Every component of `path` that names a container, deepest first: the
/// container the cgroup belongs to is one of them (a cgroup below a
/// container's is the container's child). Which one is the runtime's to
/// say: a name alone can be forged by a container that writes cgroupfs.
pub fn candidates(path: &str) -> Vec<PathIdentity> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .filter_map(|n| parse_parts(&parts[..n]))
        .collect()
}

/// Whether `identity`'s cgroup is the one the runtime made for the
/// container, given the OCI spec's `linux.cgroupsPath` as the runtime
/// reports it: a path (cgroupfs driver), or `slice:prefix:name` (systemd
/// driver). The hierarchy's root may differ (a pod's or a kind node's
/// view), so the path must end with it.
pub fn made_by_runtime(identity: &PathIdentity, cgroups_path: &str) -> bool {
    let parts: Vec<&str> = identity
        .cgroup
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match cgroups_path.split(':').collect::<Vec<_>>()[..] {
        [slice, prefix, name] if !cgroups_path.starts_with('/') => {
            let scope = format!("{prefix}-{name}.scope");
            let n = parts.len();
            n >= 2
                && (parts[n - 1] == scope || parts[n - 1] == name)
                && (slice.is_empty() || parts[n - 2] == slice)
        }
        _ => {
            let expected: Vec<&str> = cgroups_path.split('/').filter(|p| !p.is_empty()).collect();
            !expected.is_empty() && parts.ends_with(&expected)
        }
    }
}

fn parse_parts(parts: &[&str]) -> Option<PathIdentity> {
    let last = *parts.last()?;
    let (runtime, id) = match id_in(last) {
        Some(found) => found,
        None if is_container_id(last) => {
            let parent = parts.len().checked_sub(2).map(|i| parts[i]);
            let runtime = match parent {
                Some("docker") => Runtime::Docker,
                Some(p) if pod_uid_in(p).is_some() => Runtime::Unknown,
                Some(_) => Runtime::Containerd,
                None => Runtime::Unknown,
            };
            (runtime, last)
        }
        None => return None,
    };
    let mut identity = PathIdentity {
        runtime,
        container_id: id.to_string(),
        pod_uid: None,
        qos: None,
        namespace: None,
        cgroup: format!("/{}", parts.join("/")),
    };
    let kubernetes = parts.iter().any(|p| p.contains("kubepods"));
    if kubernetes {
        identity.pod_uid = parts.iter().rev().skip(1).find_map(|p| pod_uid_in(p));
        if identity.pod_uid.is_some() {
            identity.qos = Some(
                parts
                    .iter()
                    .find_map(|p| qos_in(p))
                    .unwrap_or(Qos::Guaranteed),
            );
        }
    } else if runtime == Runtime::Containerd && parts.len() >= 2 && id_in(last).is_none() {
        identity.namespace = Some(parts[parts.len() - 2].to_string());
    }
    Some(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e1c2b8a9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";
    const UID: &str = "8a7c4a3e-1b2c-4d5e-9f00-112233445566";

    #[test]
    fn podman_paths() {
        for path in [
            format!("/libpod_parent/libpod-{ID}"),
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/libpod_parent/{}/libpod-{ID}", ID.replace('3', "5")),
            format!(
                "/machine.slice/machine-libpod_pod_{}.slice/libpod-{ID}.scope",
                ID.replace('3', "5")
            ),
        ] {
            let p = parse(&path).unwrap();
            assert_eq!(
                (p.runtime, p.container_id.as_str()),
                (Runtime::Podman, ID),
                "{path}"
            );
            assert_eq!(p.cgroup, path);
        }
        // conmon, the container's monitor, is not the container.
        assert_eq!(
            parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn cgroupfs_driver_paths() {
        let p = parse(&format!("/kubepods/besteffort/pod{UID}/{ID}")).unwrap();
        assert_eq!(
            (p.container_id.as_str(), p.pod_uid.as_deref(), p.qos),
            (ID, Some(UID), Some(Qos::BestEffort))
        );
        assert_eq!(p.runtime, Runtime::Unknown);
        let p = parse(&format!("/kubepods/pod{UID}/{ID}")).unwrap();
        assert_eq!(p.qos, Some(Qos::Guaranteed));
        let p = parse(&format!("/kubepods/burstable/pod{UID}/crio-{ID}")).unwrap();
        assert_eq!((p.runtime, p.qos), (Runtime::CriO, Some(Qos::Burstable)));
    }

    #[test]
    fn systemd_driver_paths() {
        let uid = UID.replace('-', "_");
        let p = parse(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(
            (p.runtime, p.pod_uid.as_deref(), p.qos),
            (Runtime::Containerd, Some(UID), Some(Qos::Burstable))
        );
        let p = parse(&format!(
            "/kubepods.slice/kubepods-pod{uid}.slice/cri-containerd-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(p.qos, Some(Qos::Guaranteed));
        let p = parse(&format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/crio-{ID}.scope"
        ))
        .unwrap();
        assert_eq!((p.runtime, p.qos), (Runtime::CriO, Some(Qos::BestEffort)));
    }

    #[test]
    fn nested_kind_node_paths() {
        let p = parse(&format!(
            "/system.slice/docker-{ID}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        ))
        .unwrap();
        assert_eq!(
            (p.runtime, p.pod_uid.as_deref(), p.qos),
            (Runtime::Containerd, Some(UID), Some(Qos::BestEffort))
        );
    }

    #[test]
    fn docker_and_plain_containerd() {
        assert_eq!(
            parse(&format!("/system.slice/docker-{ID}.scope"))
                .unwrap()
                .runtime,
            Runtime::Docker
        );
        assert_eq!(
            parse(&format!("/docker/{ID}")).unwrap().runtime,
            Runtime::Docker
        );
        let p = parse(&format!("/default/{ID}")).unwrap();
        assert_eq!(
            (p.runtime, p.namespace.as_deref(), p.pod_uid),
            (Runtime::Containerd, Some("default"), None)
        );
    }

    #[test]
    fn children_of_a_container_name_every_container_above_them() {
        let own = format!("/kubepods/burstable/pod{UID}/{ID}");
        let child = format!("{own}/init.scope/system.slice/nginx.service");
        assert_eq!(parse(&child), None, "the last component names none");
        let found = candidates(&child);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].container_id, ID);
        assert_eq!(found[0].cgroup, own);
        assert_eq!(found[0].pod_uid.as_deref(), Some(UID));

        // A forged child named after another container: both are candidates,
        // deepest first; the runtime decides.
        let other = ID.replace('3', "4");
        let forged = format!("{own}/cri-containerd-{other}.scope");
        let found = candidates(&forged);
        assert_eq!(
            found
                .iter()
                .map(|c| c.container_id.as_str())
                .collect::<Vec<_>>(),
            [other.as_str(), ID]
        );
    }

    #[test]
    fn the_runtime_says_which_cgroup_it_made() {
        let uid = UID.replace('-', "_");
        let systemd = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{ID}.scope"
        );
        let own = parse(&systemd).unwrap();
        let spec = format!("kubepods-burstable-pod{uid}.slice:cri-containerd:{ID}");
        assert!(made_by_runtime(&own, &spec));
        let forged = parse(&format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope/cri-containerd-{ID}.scope",
            uid.replace('8', "9"),
            ID.replace('3', "4")
        ))
        .unwrap();
        assert_eq!(forged.container_id, ID);
        assert!(
            !made_by_runtime(&forged, &spec),
            "a name alone is not trusted"
        );

        let cgroupfs = parse(&format!("/kind/node/kubepods/besteffort/pod{UID}/{ID}")).unwrap();
        assert!(made_by_runtime(
            &cgroupfs,
            &format!("/kubepods/besteffort/pod{UID}/{ID}")
        ));
        let forged = parse(&format!(
            "/kubepods/besteffort/pod{UID}/{}/{ID}",
            ID.replace('3', "4")
        ))
        .unwrap();
        assert!(!made_by_runtime(
            &forged,
            &format!("/kubepods/besteffort/pod{UID}/{ID}")
        ));
    }

    #[test]
    fn not_containers() {
        assert_eq!(parse("/"), None);
        assert_eq!(parse("/system.slice/cron.service"), None);
        assert_eq!(
            parse(&format!("/system.slice/crio-conmon-{ID}.scope")),
            None
        );
        assert_eq!(parse("/kubepods/besteffort/pod123"), None);
        assert_eq!(parse(&format!("/user.slice/{}", &ID[..40])), None);
    }
}
