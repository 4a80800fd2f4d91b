//! security-profiles-operator SeccompProfiles: which API version and scope
//! the cluster serves (discovered once), one profile applied per container
//! (only when its spec changed), and collection of the cluster-scoped
//! profiles whose BehaviorProfile is gone.

use std::collections::HashMap;

use imprint_crd::profile::{BehaviorProfile, BehaviorProfileStatus};
use imprint_crd::spo::{self, SeccompProfileSpec};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::Scope;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use tracing::{debug, info, warn};

use super::leader::Leadership;
use super::objects::{
    FIELD_MANAGER, MANAGED_BY, PROFILE_NAME, PROFILE_NAMESPACE, managed_labels, owner,
};
use crate::names::Arch;
use crate::recommend::seccomp_profile_spec;

/// Which security-profiles-operator API the SeccompProfiles use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SeccompApi {
    /// `v1`, cluster-scoped (security-profiles-operator >= 0.9).
    V1,
    /// `v1beta1`, namespaced (older releases).
    V1beta1,
}

/// The SeccompProfile spec of one container: deny by default (EPERM),
/// allow every syscall in the profile (what `imprint recommend --format
/// spo` writes for the same behavior).
pub fn seccomp_spec(architectures: &[String], syscalls: &[String]) -> SeccompProfileSpec {
    let architectures: Vec<Arch> = architectures
        .iter()
        .filter_map(|a| Arch::from_kernel_name(a))
        .collect();
    seccomp_profile_spec(&architectures, syscalls.to_vec())
}

/// The controller's SeccompProfile writer.
pub struct SeccompProfiles {
    client: Client,
    api: SeccompApi,
    /// The resource of the selected version, once discovered.
    resource: Option<(ApiResource, Scope)>,
    /// Specs last applied, by name.
    applied: HashMap<String, SeccompProfileSpec>,
}

impl SeccompProfiles {
    /// A writer of `api`'s SeccompProfiles (discovered at first use).
    pub fn new(client: Client, api: SeccompApi) -> Self {
        SeccompProfiles {
            client,
            api,
            resource: None,
            applied: HashMap::new(),
        }
    }

    /// A writer whose resource is already known (no discovery).
    pub fn with_resource(
        client: Client,
        api: SeccompApi,
        resource: ApiResource,
        scope: Scope,
    ) -> Self {
        SeccompProfiles {
            resource: Some((resource, scope)),
            ..Self::new(client, api)
        }
    }

    /// Where SeccompProfiles of the selected version live: discovered once
    /// (SPO's v1 is cluster-scoped; its v1beta1 is namespaced in SPO <= 0.10
    /// and cluster-scoped in later releases, which still serve it).
    async fn resource(&mut self) -> Result<(ApiResource, Scope), String> {
        if let Some(found) = &self.resource {
            return Ok(found.clone());
        }
        let version = match self.api {
            SeccompApi::V1 => "v1",
            SeccompApi::V1beta1 => "v1beta1",
        };
        let gvk = GroupVersionKind::gvk(spo::GROUP, version, "SeccompProfile");
        match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((resource, capabilities)) => {
                info!(version, scope = ?capabilities.scope, "writing security-profiles-operator SeccompProfiles");
                let found = (resource, capabilities.scope);
                self.resource = Some(found.clone());
                Ok(found)
            }
            Err(error) => Err(format!(
                "SeccompProfile {version} is not served ({error}): is security-profiles-operator's CRD installed?"
            )),
        }
    }

    /// Applies one SeccompProfile per container of `status` while
    /// `leadership` allows; the error text when any failed.
    pub async fn apply(
        &mut self,
        profile: &BehaviorProfile,
        status: &BehaviorProfileStatus,
        leadership: &Leadership,
    ) -> Option<String> {
        let (resource, scope) = match self.resource().await {
            Ok(found) => found,
            Err(error) => {
                warn!(%error, "SeccompProfiles not written");
                return Some(error);
            }
        };
        let namespace = profile.namespace().unwrap_or_default();
        let mut failure = None;
        for container in &status.containers {
            let Some(name) = &container.seccomp_profile else {
                continue;
            };
            let spec = seccomp_spec(&container.architectures, &container.syscalls);
            if self.applied.get(name) == Some(&spec) {
                continue;
            }
            let labels = managed_labels(profile, Some(&container.name));
            let mut metadata = serde_json::json!({ "name": name, "labels": labels });
            let api: Api<DynamicObject> = match scope {
                Scope::Cluster => Api::all_with(self.client.clone(), &resource),
                Scope::Namespaced => {
                    metadata["namespace"] = namespace.clone().into();
                    metadata["ownerReferences"] = serde_json::json!([owner(profile)]);
                    Api::namespaced_with(self.client.clone(), &namespace, &resource)
                }
            };
            if let Err(error) = leadership.ensure() {
                return Some(error.to_string());
            }
            let object = serde_json::json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": metadata,
                "spec": spec,
            });
            let result = api
                .patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await;
            match result {
                Ok(_) => {
                    debug!(name, "SeccompProfile written");
                    self.applied.insert(name.clone(), spec);
                }
                Err(error) => {
                    warn!(%error, name, "SeccompProfile not written");
                    failure = Some(format!("SeccompProfile {name}: {error}"));
                }
            }
        }
        failure
    }

    /// Deletes SeccompProfiles (v1, cluster-scoped) whose BehaviorProfile
    /// is gone: a cluster-scoped object cannot be owned by a namespaced one.
    pub async fn collect_orphans(
        &mut self,
        profiles: &Store<BehaviorProfile>,
        leadership: &Leadership,
    ) {
        let Some((resource, Scope::Cluster)) = self.resource.clone() else {
            return;
        };
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
        let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
        let Ok(list) = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
        else {
            return;
        };
        for object in list.items {
            let labels = object.metadata.labels.clone().unwrap_or_default();
            let (Some(namespace), Some(profile)) =
                (labels.get(PROFILE_NAMESPACE), labels.get(PROFILE_NAME))
            else {
                continue;
            };
            if profiles
                .get(&ObjectRef::new(profile).within(namespace))
                .is_none()
                && Api::<BehaviorProfile>::namespaced(self.client.clone(), namespace)
                    .get_opt(profile)
                    .await
                    .is_ok_and(|p| p.is_none())
            {
                if !leadership.may_write() {
                    return;
                }
                let name = object.name_any();
                info!(
                    name,
                    "deleting the SeccompProfile of a deleted BehaviorProfile"
                );
                self.applied.remove(&name);
                if let Err(error) = api.delete(&name, &DeleteParams::default()).await {
                    debug!(%error, name, "orphan not deleted");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend;
    use imprint_crd::report::{ContainerBehaviorReportSpec, SyscallSet};

    #[test]
    fn seccomp_specs_deny_by_default_and_allow_what_was_seen() {
        let spec = seccomp_spec(&["x86_64".into()], &["read".into(), "write".into()]);
        assert_eq!(spec.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(spec.architectures, ["SCMP_ARCH_X86_64"]);
        assert_eq!(spec.syscalls[0].names, ["read", "write"]);
        assert!(seccomp_spec(&[], &[]).syscalls.is_empty());
    }

    #[test]
    fn the_controller_writes_what_recommend_writes() {
        let report = ContainerBehaviorReportSpec {
            syscalls: SyscallSet {
                arch: "x86_64".into(),
                names: vec!["read".into(), "openat".into(), "write".into()],
                unknown_numbers: Vec::new(),
            },
            ..ContainerBehaviorReportSpec::default()
        };
        let merged = recommend::merge([&report]);
        let names = recommend::allowed_syscalls(&merged);
        assert_eq!(
            seccomp_spec(&["x86_64".into()], &names),
            recommend::spo_spec(&merged)
        );
    }
}
