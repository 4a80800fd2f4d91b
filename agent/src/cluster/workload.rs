//! The workload owning a pod, from ownerReferences: ReplicaSet ->
//! Deployment, Job -> CronJob, StatefulSet, DaemonSet, or the bare Pod.

use std::collections::HashMap;
use std::sync::Mutex;

use imprint_crd::report::CurrentSecurityContext;
use imprint_crd::report::WorkloadRef;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client};

/// The controlling owner among `owners` (the one with `controller: true`).
pub fn controller_of(owners: &[OwnerReference]) -> Option<&OwnerReference> {
    owners.iter().find(|o| o.controller == Some(true))
}

/// One step up the ownership chain: which owner kinds have an owner of
/// their own worth looking up (a ReplicaSet's Deployment, a Job's CronJob).
pub fn needs_lookup(kind: &str) -> bool {
    matches!(kind, "ReplicaSet" | "Job")
}

/// The workload of a pod whose controlling owner is `owner` (already
/// resolved one level up when `parent` is given).
pub fn workload_from(
    pod_name: &str,
    owner: Option<&OwnerReference>,
    parent: Option<&OwnerReference>,
) -> WorkloadRef {
    match (owner, parent) {
        (_, Some(parent)) => WorkloadRef {
            kind: parent.kind.clone(),
            name: parent.name.clone(),
        },
        (Some(owner), None) => WorkloadRef {
            kind: owner.kind.clone(),
            name: owner.name.clone(),
        },
        (None, None) => WorkloadRef {
            kind: "Pod".into(),
            name: pod_name.into(),
        },
    }
}

/// Resolves pods to workloads through the API, caching each owner lookup
/// (owners do not change their own owners).
pub struct Workloads {
    client: Client,
    parents: Mutex<HashMap<(String, String, String), Option<OwnerReference>>>,
}

impl Workloads {
    /// A resolver using `client`.
    pub fn new(client: Client) -> Self {
        Workloads {
            client,
            parents: Mutex::new(HashMap::new()),
        }
    }

    /// The workload owning `pod`; `None` while an owner cannot be looked
    /// up (API unreachable). An owner that is gone counts as the workload.
    pub async fn of_pod(&self, pod: &Pod) -> Option<WorkloadRef> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let owner = controller_of(pod.metadata.owner_references.as_deref().unwrap_or_default());
        let parent = match owner {
            Some(owner) if needs_lookup(&owner.kind) => {
                self.parent(&namespace, &owner.kind, &owner.name).await?
            }
            _ => None,
        };
        Some(workload_from(&name, owner, parent.as_ref()))
    }

    /// The controlling owner of an owner: `Some(None)` when it has none or
    /// is gone, `None` when the lookup failed.
    async fn parent(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
    ) -> Option<Option<OwnerReference>> {
        let key = (namespace.to_string(), kind.to_string(), name.to_string());
        if let Some(known) = self.parents.lock().ok()?.get(&key) {
            return Some(known.clone());
        }
        let lookup = async {
            match kind {
                "ReplicaSet" => Api::<ReplicaSet>::namespaced(self.client.clone(), namespace)
                    .get(name)
                    .await
                    .map(|o| o.metadata.owner_references),
                _ => Api::<Job>::namespaced(self.client.clone(), namespace)
                    .get(name)
                    .await
                    .map(|o| o.metadata.owner_references),
            }
        };
        let owners = tokio::time::timeout(std::time::Duration::from_secs(5), lookup).await;
        match owners {
            Ok(Ok(owners)) => {
                let parent = controller_of(owners.as_deref().unwrap_or_default()).cloned();
                if let Ok(mut cache) = self.parents.lock() {
                    if cache.len() > 10_000 {
                        cache.clear();
                    }
                    cache.insert(key, parent.clone());
                }
                Some(parent)
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => Some(None),
            Ok(Err(error)) => {
                tracing::debug!(%error, kind, name, "owner lookup failed");
                None
            }
            Err(_) => {
                tracing::debug!(kind, name, "owner lookup timed out");
                None
            }
        }
    }
}

/// What the pod spec says about one container: the mount paths it may
/// write, and its securityContext with the pod-level fields folded in.
pub fn container_facts(
    pod: &Pod,
    container: &str,
) -> (Vec<String>, Option<CurrentSecurityContext>) {
    let Some(spec) = pod.spec.as_ref() else {
        return (Vec::new(), None);
    };
    let Some(c) = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container)
    else {
        return (Vec::new(), None);
    };
    let mut writable: Vec<String> = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.read_only != Some(true))
        .map(|m| m.mount_path.clone())
        .collect();
    writable.sort();
    writable.dedup();
    let pod_level = spec.security_context.as_ref();
    let own = c.security_context.as_ref();
    let seccomp = own
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod_level.and_then(|p| p.seccomp_profile.as_ref()))
        .map(|p| match &p.localhost_profile {
            Some(path) => format!("{}/{path}", p.type_),
            None => p.type_.clone(),
        });
    let caps = own.and_then(|s| s.capabilities.as_ref());
    let context = CurrentSecurityContext {
        privileged: own.and_then(|s| s.privileged),
        allow_privilege_escalation: own.and_then(|s| s.allow_privilege_escalation),
        read_only_root_filesystem: own.and_then(|s| s.read_only_root_filesystem),
        run_as_non_root: own
            .and_then(|s| s.run_as_non_root)
            .or_else(|| pod_level.and_then(|p| p.run_as_non_root)),
        capabilities_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        seccomp_profile: seccomp,
    };
    (writable, Some(context))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, name: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "u".into(),
            controller: Some(controller),
            block_owner_deletion: None,
        }
    }

    #[test]
    fn the_controlling_owner_wins() {
        let owners = [
            owner("ConfigMap", "x", false),
            owner("ReplicaSet", "web-7d9", true),
        ];
        assert_eq!(controller_of(&owners).unwrap().name, "web-7d9");
        assert!(controller_of(&owners[..1]).is_none());
    }

    #[test]
    fn chains_resolve_to_the_top_workload() {
        let rs = owner("ReplicaSet", "web-7d9", true);
        let deploy = owner("Deployment", "web", true);
        assert_eq!(
            workload_from("web-7d9-abc", Some(&rs), Some(&deploy)),
            WorkloadRef {
                kind: "Deployment".into(),
                name: "web".into()
            }
        );
        // A bare ReplicaSet stays the workload.
        assert_eq!(workload_from("p", Some(&rs), None).kind, "ReplicaSet");
        let sts = owner("StatefulSet", "db", true);
        assert_eq!(workload_from("db-0", Some(&sts), None).name, "db");
        assert_eq!(
            workload_from("solo", None, None),
            WorkloadRef {
                kind: "Pod".into(),
                name: "solo".into()
            }
        );
        assert!(needs_lookup("Job") && needs_lookup("ReplicaSet") && !needs_lookup("DaemonSet"));
    }
}
