//! Fixtures for the publisher's decisions: containers as the runtime names
//! them, pods as the API holds them, behavior as the probes saw it.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SecurityContext, VolumeMount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::capture::aggregate::Behavior;
use crate::runtime::cgroup_path;
use crate::runtime::identity::ContainerInfo;
use crate::runtime::{Filter, Holder};

/// A container id (64 hex characters).
pub const ID: &str = "3f4e1c2b8a9d0e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f";

/// The cgroup path of that container in a burstable pod (cgroupfs driver).
pub fn path() -> String {
    format!("/kubepods/burstable/pod0b1c/{ID}")
}

/// A container `container` of pod `namespace/pod`, named by the runtime.
pub fn named(namespace: &str, pod: &str, container: &str) -> Holder {
    let identity = cgroup_path::parse(&path()).expect("a container path");
    Holder::Container(
        identity,
        Some(Box::new(ContainerInfo {
            id: ID.into(),
            runtime_namespace: "k8s.io".into(),
            pod: Some(pod.into()),
            pod_namespace: Some(namespace.into()),
            pod_uid: Some(format!("uid-{pod}")),
            container: Some(container.into()),
            image: Some("nginx:1.27".into()),
            ..ContainerInfo::default()
        })),
    )
}

/// The same container before the runtime named it.
pub fn unnamed() -> Holder {
    Holder::Container(cgroup_path::parse(&path()).expect("a container path"), None)
}

/// A pod sandbox (pause).
pub fn sandbox(namespace: &str, pod: &str) -> Holder {
    match named(namespace, pod, "POD") {
        Holder::Container(identity, Some(mut info)) => {
            info.sandbox = true;
            Holder::Container(identity, Some(info))
        }
        other => other,
    }
}

/// The agent's filter: every namespace, never the host.
pub fn agent_filter() -> Filter {
    Filter {
        no_host: true,
        ..Filter::default()
    }
}

/// Pod `namespace/name` on `node` with one container `nginx` that mounts
/// `/var/cache/nginx` writable and runs without privilege escalation.
pub fn pod(namespace: &str, name: &str, node: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "nginx".into(),
                volume_mounts: Some(vec![VolumeMount {
                    name: "cache".into(),
                    mount_path: "/var/cache/nginx".into(),
                    ..VolumeMount::default()
                }]),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// Behavior with these syscall numbers (x86_64) and one exec.
pub fn behavior(syscalls: &[u32], exec_count: u64) -> Behavior {
    let mut behavior = Behavior {
        syscalls: syscalls.iter().copied().collect(),
        events: syscalls.len() as u64 + exec_count,
        ..Behavior::default()
    };
    behavior.executables.insert(
        ("/usr/sbin/nginx".into(), vec!["nginx".into()]),
        crate::capture::aggregate::ExecStats {
            count: exec_count,
            ..Default::default()
        },
    );
    behavior
}
