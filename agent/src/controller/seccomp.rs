//! security-profiles-operator SeccompProfiles: which API version and scope
//! the cluster serves (discovered once), one profile applied per container
//! (only when its spec changed), and collection of the cluster-scoped
//! profiles whose BehaviorProfile is gone.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use imprint_crd::profile::{BehaviorProfile, BehaviorProfileStatus};
use imprint_crd::report::SyscallArguments;
use imprint_crd::spo::{self, SeccompProfileSpec};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams, Preconditions,
};
use kube::discovery::Scope;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use tracing::{debug, info, warn};

use super::leader::Leadership;
use super::objects::{
    FIELD_MANAGER, MANAGED_BY, Ownership, PROFILE_NAME, PROFILE_NAMESPACE, PROFILE_UID, legacy,
    managed_labels, owner, ownership, seccomp_name,
};
use crate::argument_rules::ArgumentRules;
use crate::names::Arch;
use crate::recommend::spo_spec_of;

/// Which security-profiles-operator API the SeccompProfiles use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SeccompApi {
    /// `v1`, cluster-scoped (security-profiles-operator >= 0.9).
    V1,
    /// `v1beta1`, namespaced (older releases).
    V1beta1,
}

/// The SeccompProfile spec of one container: deny by default (EPERM),
/// allow every syscall in the profile, those with `arguments` only on the
/// calls listed (what `imprint recommend --format spo` writes for the same
/// behavior).
pub fn seccomp_spec(
    architectures: &[String],
    syscalls: &[String],
    arguments: &[SyscallArguments],
) -> SeccompProfileSpec {
    let architectures: Vec<Arch> = architectures
        .iter()
        .filter_map(|a| Arch::from_kernel_name(a))
        .collect();
    let allowed: BTreeSet<String> = syscalls.iter().cloned().collect();
    spo_spec_of(
        &architectures,
        syscalls.to_vec(),
        &ArgumentRules::stored(arguments, &allowed),
    )
}

/// The controller's SeccompProfile writer.
pub struct SeccompProfiles {
    client: Client,
    api: SeccompApi,
    /// The resource of the selected version, once discovered.
    resource: Option<(ApiResource, Scope)>,
    /// Specs last applied, by name.
    applied: HashMap<String, SeccompProfileSpec>,
    /// The name each (profile UID, container) was given: the injective
    /// name, or an earlier release's name adopted.
    named: HashMap<(String, String), String>,
}

impl SeccompProfiles {
    /// A writer of `api`'s SeccompProfiles (discovered at first use).
    pub fn new(client: Client, api: SeccompApi) -> Self {
        SeccompProfiles {
            client,
            api,
            resource: None,
            applied: HashMap::new(),
            named: HashMap::new(),
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

    /// The API of SeccompProfiles for `profile`'s namespace.
    fn api_for(
        &self,
        resource: &ApiResource,
        scope: &Scope,
        namespace: &str,
    ) -> Api<DynamicObject> {
        match scope {
            Scope::Cluster => Api::all_with(self.client.clone(), resource),
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), namespace, resource),
        }
    }

    /// The SeccompProfile name of each of `containers` of `profile`: the
    /// injective name, or the name an earlier release gave, when an object
    /// of that name made for this profile exists and none of the new name
    /// does (adopted: pods and ProfileBindings may name it). Looked up once
    /// per container.
    pub async fn names(
        &mut self,
        profile: &BehaviorProfile,
        containers: &[String],
    ) -> BTreeMap<String, String> {
        let namespace = profile.namespace().unwrap_or_default();
        let workload = &profile.spec.workload;
        let uid = profile.uid().unwrap_or_default();
        let mut names = BTreeMap::new();
        for container in containers {
            let name = seccomp_name(&namespace, workload, container);
            let key = (uid.clone(), container.clone());
            let resolved = match self.named.get(&key) {
                Some(resolved) => resolved.clone(),
                None => match self.earlier_name(profile, container, &name).await {
                    Ok(found) => {
                        if let Some(earlier) = &found {
                            info!(name = %earlier, instead_of = %name, "a SeccompProfile of an earlier release adopted under its name");
                        }
                        let resolved = found.unwrap_or(name);
                        self.named.insert(key, resolved.clone());
                        resolved
                    }
                    // Not known yet (SPO's CRD missing, the API server
                    // unreachable): asked again next time.
                    Err(()) => name,
                },
            };
            names.insert(container.clone(), resolved);
        }
        names
    }

    /// The earlier release's name of `container`'s SeccompProfile, when an
    /// object of that name is this profile's and none named `name` exists.
    async fn earlier_name(
        &mut self,
        profile: &BehaviorProfile,
        container: &str,
        name: &str,
    ) -> Result<Option<String>, ()> {
        let namespace = profile.namespace().unwrap_or_default();
        let earlier = legacy::seccomp_name(&namespace, &profile.spec.workload, container);
        let (resource, scope) = self.resource().await.map_err(|_| ())?;
        let api = self.api_for(&resource, &scope, &namespace);
        if api.get_metadata_opt(name).await.map_err(|_| ())?.is_some() {
            return Ok(None);
        }
        let Some(object) = api.get_metadata_opt(&earlier).await.map_err(|_| ())? else {
            return Ok(None);
        };
        Ok(
            (ownership(&object.metadata, profile, container) != Ownership::NotOurs)
                .then_some(earlier),
        )
    }

    /// Applies one SeccompProfile per container of `status` while
    /// `leadership` allows, never over an object that is not this
    /// profile's: what failed, and the names found taken.
    pub async fn apply(
        &mut self,
        profile: &BehaviorProfile,
        status: &BehaviorProfileStatus,
        leadership: &Leadership,
    ) -> Applied {
        let mut applied = Applied::default();
        let (resource, scope) = match self.resource().await {
            Ok(found) => found,
            Err(error) => {
                warn!(%error, "SeccompProfiles not written");
                applied.failure = Some(error);
                return applied;
            }
        };
        let namespace = profile.namespace().unwrap_or_default();
        let api = self.api_for(&resource, &scope, &namespace);
        for container in &status.containers {
            let Some(name) = &container.seccomp_profile else {
                continue;
            };
            let spec = seccomp_spec(
                &container.architectures,
                &container.syscalls,
                &container.syscall_arguments,
            );
            if self.applied.get(name) == Some(&spec) {
                continue;
            }
            if let Err(error) = leadership.ensure() {
                applied.failure = Some(error.to_string());
                return applied;
            }
            let existing = match api.get_metadata_opt(name).await {
                Ok(existing) => existing,
                Err(error) => {
                    applied.failure = Some(format!("SeccompProfile {name}: {error}"));
                    continue;
                }
            };
            let mut metadata = serde_json::json!({
                "name": name,
                "labels": managed_labels(profile, Some(&container.name)),
            });
            if scope == Scope::Namespaced {
                metadata["namespace"] = namespace.clone().into();
                metadata["ownerReferences"] = serde_json::json!([owner(profile)]);
            }
            let mut object = serde_json::json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": metadata,
                "spec": spec,
            });
            let result = match existing {
                Some(existing) => {
                    if ownership(&existing.metadata, profile, &container.name) == Ownership::NotOurs
                    {
                        warn!(
                            name,
                            "a SeccompProfile of this name exists and is not this profile's: left alone"
                        );
                        applied.taken.push(name.clone());
                        continue;
                    }
                    // Written only as the object just checked is: a write
                    // that came between makes this one fail (and retry).
                    object["metadata"]["resourceVersion"] =
                        existing.metadata.resource_version.clone().into();
                    api.patch(
                        name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&object),
                    )
                    .await
                }
                None if *name
                    != seccomp_name(&namespace, &profile.spec.workload, &container.name) =>
                {
                    // The adopted object was deleted: the next reconcile
                    // names the container's profile anew.
                    self.named
                        .remove(&(profile.uid().unwrap_or_default(), container.name.clone()));
                    continue;
                }
                None => {
                    let object: DynamicObject = match serde_json::from_value(object) {
                        Ok(object) => object,
                        Err(error) => {
                            applied.failure = Some(format!("SeccompProfile {name}: {error}"));
                            continue;
                        }
                    };
                    let params = PostParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..PostParams::default()
                    };
                    api.create(&params, &object).await
                }
            };
            match result {
                Ok(_) => {
                    debug!(name, "SeccompProfile written");
                    self.applied.insert(name.clone(), spec);
                }
                Err(error) => {
                    warn!(%error, name, "SeccompProfile not written");
                    applied.failure = Some(format!("SeccompProfile {name}: {error}"));
                }
            }
        }
        applied
    }

    /// Deletes SeccompProfiles (v1, cluster-scoped) labelled with the UID
    /// of a BehaviorProfile that is gone: a cluster-scoped object cannot
    /// be owned by a namespaced one. Nothing without that label is deleted.
    pub async fn collect_orphans(
        &mut self,
        profiles: &Store<BehaviorProfile>,
        leadership: &Leadership,
    ) {
        let Some((resource, Scope::Cluster)) = self.resource.clone() else {
            return;
        };
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
        let selector = format!("{}={},{PROFILE_UID}", MANAGED_BY.0, MANAGED_BY.1);
        let Ok(list) = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
        else {
            return;
        };
        let live: HashSet<String> = profiles.state().iter().filter_map(|p| p.uid()).collect();
        for object in list.items {
            let labels = object.metadata.labels.clone().unwrap_or_default();
            let (Some(uid), Some(namespace), Some(profile)) = (
                labels.get(PROFILE_UID),
                labels.get(PROFILE_NAMESPACE),
                labels.get(PROFILE_NAME),
            ) else {
                continue;
            };
            if live.contains(uid) {
                continue;
            }
            // The store may lag: the profile itself says whether it is gone.
            let current = Api::<BehaviorProfile>::namespaced(self.client.clone(), namespace)
                .get_opt(profile)
                .await;
            let gone = match current {
                Ok(None) => true,
                Ok(Some(current)) => current.uid().as_ref() != Some(uid),
                Err(_) => false,
            };
            if !gone {
                continue;
            }
            if !leadership.may_write() {
                return;
            }
            let name = object.name_any();
            info!(
                name,
                uid, "deleting the SeccompProfile of a deleted BehaviorProfile"
            );
            self.applied.remove(&name);
            let precondition = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: object.metadata.uid.clone(),
                    resource_version: object.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            if let Err(error) = api.delete(&name, &precondition).await {
                debug!(%error, name, "orphan not deleted");
            }
        }
    }
}

/// What applying a profile's SeccompProfiles came to.
#[derive(Debug, Default)]
pub struct Applied {
    /// The last failure (retried at the next resync).
    pub failure: Option<String>,
    /// Names held by objects that are not this profile's (left alone).
    pub taken: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend;
    use imprint_crd::report::{ContainerBehaviorReportSpec, SyscallSet};

    /// Only objects labelled with the UID of a BehaviorProfile that is gone
    /// are collected: not one whose profile lives (even if the store has
    /// not seen it yet), not one without the UID label (an earlier
    /// release's, or anyone's), and one whose profile of that name was
    /// deleted and made again is.
    #[tokio::test]
    async fn only_objects_of_a_gone_profile_uid_are_collected() {
        use crate::controller::mock_api;
        use crate::controller::objects::new_profile;
        use imprint_crd::report::WorkloadRef;
        use kube::runtime::{reflector, watcher};

        let web = WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        };
        let mut live = new_profile("shop", &web);
        live.metadata.uid = Some("uid-live".into());
        let seccomp = "/apis/security-profiles-operator.x-k8s.io/v1/seccompprofiles";
        let object = |name: &str, profile: &str, uid: Option<&str>| {
            let mut labels = serde_json::json!({
                "app.kubernetes.io/managed-by": "imprint",
                "imprint.dev/profile-namespace": "shop",
                "imprint.dev/profile-name": profile,
            });
            if let Some(uid) = uid {
                labels["imprint.dev/profile-uid"] = uid.into();
            }
            serde_json::json!({"apiVersion": "security-profiles-operator.x-k8s.io/v1", "kind": "SeccompProfile",
                "metadata": {"name": name, "labels": labels, "uid": format!("object-{name}"), "resourceVersion": "1"}})
        };
        let store = mock_api::Objects::default();
        store.lock().unwrap().insert(
            seccomp.to_string(),
            serde_json::json!({"apiVersion": "security-profiles-operator.x-k8s.io/v1", "kind": "SeccompProfileList",
                "metadata": {}, "items": [
                    object("live", "deployment-web", Some("uid-live")),
                    object("made-again", "deployment-web", Some("uid-before")),
                    object("gone", "deployment-gone", Some("uid-gone")),
                    object("unlabelled", "deployment-gone", None),
                    object("unseen", "deployment-new", Some("uid-new")),
                ]}),
        );
        let mut unseen = new_profile(
            "shop",
            &WorkloadRef {
                kind: "Deployment".into(),
                name: "new".into(),
            },
        );
        unseen.metadata.uid = Some("uid-new".into());
        store.lock().unwrap().insert(
            "/apis/imprint.dev/v1alpha1/namespaces/shop/behaviorprofiles/deployment-new".into(),
            serde_json::to_value(&unseen).unwrap(),
        );
        store.lock().unwrap().insert(
            "/apis/imprint.dev/v1alpha1/namespaces/shop/behaviorprofiles/deployment-web".into(),
            serde_json::to_value(&live).unwrap(),
        );
        let (client, calls) = mock_api::client_with(live.clone(), Box::new(|_, _| None), store);
        let (reader, mut writer) = reflector::store::<BehaviorProfile>();
        writer.apply_watcher_event(&watcher::Event::Apply(live));
        let gvk = GroupVersionKind::gvk(spo::GROUP, "v1", "SeccompProfile");
        let mut writer = SeccompProfiles::with_resource(
            client,
            SeccompApi::V1,
            ApiResource::from_gvk_with_plural(&gvk, "seccompprofiles"),
            Scope::Cluster,
        );
        writer
            .collect_orphans(&reader, &Leadership::default())
            .await;
        let deleted: Vec<String> = calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.method == "DELETE")
            .map(|c| c.path.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(deleted, ["made-again", "gone"]);
    }

    #[test]
    fn seccomp_specs_deny_by_default_and_allow_what_was_seen() {
        let spec = seccomp_spec(&["x86_64".into()], &["read".into(), "write".into()], &[]);
        assert_eq!(spec.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(spec.architectures, ["SCMP_ARCH_X86_64"]);
        assert_eq!(spec.syscalls[0].names, ["read", "write"]);
        assert!(seccomp_spec(&[], &[], &[]).syscalls.is_empty());
    }

    #[test]
    fn the_controller_writes_what_recommend_writes() {
        let report = ContainerBehaviorReportSpec {
            syscalls: SyscallSet {
                arch: "x86_64".into(),
                names: vec![
                    "read".into(),
                    "openat".into(),
                    "write".into(),
                    "clone".into(),
                    "clone3".into(),
                ],
                unknown_numbers: Vec::new(),
                arguments: vec![SyscallArguments {
                    name: "clone".into(),
                    calls: vec![vec![imprint_crd::report::ArgumentValue {
                        index: 0,
                        value: 0,
                        mask: Some(0x7e02_0000),
                    }]],
                    overflow: false,
                }],
            },
            ..ContainerBehaviorReportSpec::default()
        };
        let merged = recommend::merge([&report]);
        let names = recommend::allowed_syscalls(&merged);
        let rules = recommend::argument_rules(&merged, recommend::ArgumentStyle::Restricted);
        let spec = seccomp_spec(&["x86_64".into()], &names, &rules.to_stored());
        assert_eq!(spec, recommend::spo_spec(&merged));
        // clone on its arguments, clone3 to its fallback.
        assert!(
            spec.syscalls
                .iter()
                .any(|r| r.names == ["clone"] && !r.args.is_empty())
        );
        assert!(
            spec.syscalls
                .iter()
                .any(|r| r.names == ["clone3"] && r.errno_ret == Some(38))
        );
    }
}
