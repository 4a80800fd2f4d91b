//! Writing a workload's derived NetworkPolicy as an object, when the user
//! opted in (`--apply-network-policies`): named as its BehaviorProfile,
//! owned by it (it goes when the profile goes), labelled as imprint's, and
//! never written over a NetworkPolicy imprint did not make.

use std::collections::HashMap;

use imprint_crd::profile::BehaviorProfile;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use super::leader::Leadership;
use super::objects::{FIELD_MANAGER, MANAGED_BY, PROFILE_UID, managed_labels, owner};
use crate::cluster::reflect;
use crate::task::AbortOnDrop;

/// Name of the NetworkPolicy of a BehaviorProfile: the profile's own
/// (`deployment-web`), in its namespace.
pub fn policy_name(profile: &BehaviorProfile) -> String {
    profile.name_any()
}

/// The states of a workload's NetworkPolicy (`status.networkPolicy.state`).
pub mod states {
    /// In the status only.
    pub const PROPOSED: &str = "Proposed";
    /// An object of imprint's holds a policy for the workload.
    pub const APPLIED: &str = "Applied";
    /// The profile is Stable but the proposal is not applied (the
    /// conditions say why).
    pub const HELD: &str = "Held";
}

/// Reasons of the `NetworkPolicy` conditions [`decide`] asks for.
pub mod reasons {
    /// The policy in force is an earlier proposal.
    pub const APPLIED_IS_EARLIER: &str = "AppliedIsEarlier";
    /// Stable, but a listener went unobserved: nothing applied.
    pub const NOT_APPLIED: &str = "NotApplied";
}

/// What to do with a workload's proposal, and what to say of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Write the proposal.
    pub apply: bool,
    /// The state to show: what is in force (a write that succeeds makes it
    /// `Applied`).
    pub state: &'static str,
    /// A `NetworkPolicy` condition to show ([`reasons`]).
    pub reason: Option<&'static str>,
}

/// The decision for a proposal: applied only once the profile is `stable`
/// and no listener went `unobserved`; `in_force` is imprint's object for
/// the workload, if any (`true`: it holds the proposal).
pub fn decide(stable: bool, unobserved: bool, in_force: Option<bool>) -> Decision {
    if stable && !unobserved {
        // What is in force until the write succeeds.
        let state = if in_force.is_some() {
            states::APPLIED
        } else {
            states::PROPOSED
        };
        return Decision {
            apply: true,
            state,
            reason: None,
        };
    }
    let (state, reason) = match in_force {
        Some(true) => (states::APPLIED, None),
        Some(false) if stable => (states::HELD, Some(reasons::APPLIED_IS_EARLIER)),
        Some(false) => (states::APPLIED, Some(reasons::APPLIED_IS_EARLIER)),
        None if stable => (states::HELD, Some(reasons::NOT_APPLIED)),
        None => (states::PROPOSED, None),
    };
    Decision {
        apply: false,
        state,
        reason,
    }
}

/// What became of one write.
#[derive(Clone, Debug, PartialEq)]
pub enum Written {
    /// The object holds the derived spec (written now, or already).
    Applied(String),
    /// An object of that name exists and is not imprint's: left alone.
    Taken(String),
    /// The write failed (retried at the next reconcile).
    Failed(String),
}

/// Writes NetworkPolicies and keeps a watch of the ones imprint made.
pub struct NetworkPolicies {
    client: Client,
    ours: Store<NetworkPolicy>,
    /// (namespace, name) → the spec last written and the resourceVersion
    /// the write returned: unchanged ones are not written again, and an
    /// object changed by anyone else (another resourceVersion) is.
    written: HashMap<(String, String), (NetworkPolicySpec, Option<String>)>,
}

impl NetworkPolicies {
    /// Starts the watch of imprint's NetworkPolicies (by label); it ends
    /// when the guard is dropped.
    pub fn start(client: Client) -> (NetworkPolicies, AbortOnDrop) {
        let (ours, watch) = reflect(
            Api::<NetworkPolicy>::all(client.clone()),
            watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)),
            |_: &NetworkPolicy| {},
        );
        let policies = NetworkPolicies {
            client,
            ours,
            written: HashMap::new(),
        };
        (policies, watch)
    }

    /// The NetworkPolicy of `profile` that imprint wrote, as the watch has it.
    pub fn current(&self, profile: &BehaviorProfile) -> Option<NetworkPolicySpec> {
        let namespace = profile.namespace()?;
        let object = self
            .ours
            .get(&ObjectRef::new(&policy_name(profile)).within(&namespace))?;
        ours(&object.metadata, profile).then(|| object.spec.clone().unwrap_or_default())
    }

    /// Makes `profile`'s NetworkPolicy hold `spec` while `leadership`
    /// allows; an object of its name that is not the profile's is left alone.
    pub async fn apply(
        &mut self,
        profile: &BehaviorProfile,
        spec: &NetworkPolicySpec,
        leadership: &Leadership,
    ) -> Written {
        let namespace = profile.namespace().unwrap_or_default();
        let name = policy_name(profile);
        let key = (namespace.clone(), name.clone());
        let watched = self
            .ours
            .get(&ObjectRef::new(&name).within(&namespace))
            .filter(|o| ours(&o.metadata, profile));
        if let (Some((last, version)), Some(object)) = (self.written.get(&key), &watched)
            && last == spec
            && object.metadata.resource_version == *version
        {
            return Written::Applied(name);
        }
        if let Err(error) = leadership.ensure() {
            return Written::Failed(error.to_string());
        }
        let api = Api::<NetworkPolicy>::namespaced(self.client.clone(), &namespace);
        let existing = match api.get_metadata_opt(&name).await {
            Ok(existing) => existing,
            Err(error) => return Written::Failed(format!("NetworkPolicy {name}: {error}")),
        };
        let mut object = NetworkPolicy {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(managed_labels(profile, None)),
                owner_references: Some(vec![owner(profile)]),
                ..ObjectMeta::default()
            },
            spec: Some(spec.clone()),
        };
        let result = match existing {
            Some(existing) if !ours(&existing.metadata, profile) => {
                warn!(
                    namespace,
                    name, "a NetworkPolicy of this name exists and is not imprint's: left alone"
                );
                return Written::Taken(name);
            }
            Some(existing) => {
                // Written only over the object just checked.
                object.metadata.resource_version = existing.metadata.resource_version;
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await
            }
            None => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                };
                api.create(&params, &object).await
            }
        };
        match result {
            Ok(written) => {
                info!(namespace, name, "NetworkPolicy applied");
                self.written
                    .insert(key, (spec.clone(), written.metadata.resource_version));
                Written::Applied(name)
            }
            Err(kube::Error::Api(status))
                if status.code == 409 && status.reason == "AlreadyExists" =>
            {
                Written::Taken(name)
            }
            Err(error) => {
                warn!(%error, namespace, name, "NetworkPolicy not written");
                Written::Failed(format!("NetworkPolicy {name}: {error}"))
            }
        }
    }
}

/// Whether two specs are the same policy: an empty rule list and none are
/// (the API server drops an empty list; `policyTypes` says what is denied).
pub fn same_policy(a: &NetworkPolicySpec, b: &NetworkPolicySpec) -> bool {
    fn normal(spec: &NetworkPolicySpec) -> NetworkPolicySpec {
        let mut spec = spec.clone();
        spec.ingress = spec.ingress.filter(|r| !r.is_empty());
        spec.egress = spec.egress.filter(|r| !r.is_empty());
        spec
    }
    normal(a) == normal(b)
}

/// Whether an object is `profile`'s: labelled with its UID or owned by it
/// (nothing else is ever written over).
fn ours(meta: &ObjectMeta, profile: &BehaviorProfile) -> bool {
    let Some(uid) = profile.uid().filter(|u| !u.is_empty()) else {
        return false;
    };
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(PROFILE_UID))
        .is_some_and(|v| *v == uid);
    let owned = meta.owner_references.iter().flatten().any(|o| o.uid == uid);
    labelled || owned
}

#[cfg(test)]
mod tests {
    use super::*;
    use imprint_crd::report::WorkloadRef;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn profile(uid: &str) -> BehaviorProfile {
        let mut p = super::super::objects::new_profile(
            "shop",
            &WorkloadRef {
                kind: "Deployment".into(),
                name: "web".into(),
            },
        );
        p.metadata.uid = Some(uid.into());
        p
    }

    #[test]
    fn only_objects_labelled_or_owned_by_the_profile_are_ours() {
        let p = profile("u-1");
        let labelled = ObjectMeta {
            labels: Some([(PROFILE_UID.to_string(), "u-1".to_string())].into()),
            ..ObjectMeta::default()
        };
        assert!(ours(&labelled, &p));
        let owned = ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                uid: "u-1".into(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        };
        assert!(ours(&owned, &p));
        // Same name and managed-by label, another profile's UID: not ours.
        let mut other = managed_labels(&profile("u-2"), None);
        other.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        let foreign = ObjectMeta {
            labels: Some(other),
            ..ObjectMeta::default()
        };
        assert!(!ours(&foreign, &p));
        assert!(!ours(&ObjectMeta::default(), &p));
        // A profile not yet created (no UID) owns nothing.
        assert!(!ours(&labelled, &profile("")));
        assert_eq!(policy_name(&p), "deployment-web");
    }

    #[test]
    fn applied_only_when_stable_with_every_listener_seen() {
        use reasons::*;
        use states::*;
        let d = |stable, unobserved, in_force| {
            let d = decide(stable, unobserved, in_force);
            (d.apply, d.state, d.reason)
        };
        // Stable, nothing unobserved: written (again when changed); the
        // state before the write is what is in force, so a failed first
        // write does not show as applied.
        assert_eq!(d(true, false, None), (true, PROPOSED, None));
        for in_force in [Some(true), Some(false)] {
            assert_eq!(d(true, false, in_force), (true, APPLIED, None));
        }
        // Learning: nothing written; an earlier policy stays in force.
        assert_eq!(d(false, false, None), (false, PROPOSED, None));
        assert_eq!(d(false, false, Some(true)), (false, APPLIED, None));
        assert_eq!(
            d(false, true, Some(false)),
            (false, APPLIED, Some(APPLIED_IS_EARLIER))
        );
        // Stable with an unobserved listener: held, and said.
        assert_eq!(d(true, true, None), (false, HELD, Some(NOT_APPLIED)));
        assert_eq!(
            d(true, true, Some(false)),
            (false, HELD, Some(APPLIED_IS_EARLIER))
        );
        assert_eq!(d(true, true, Some(true)), (false, APPLIED, None));
    }

    #[test]
    fn an_empty_rule_list_is_the_same_policy_as_none() {
        use k8s_openapi::api::networking::v1::NetworkPolicyIngressRule;
        let stored = NetworkPolicySpec {
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ..NetworkPolicySpec::default()
        };
        let derived = NetworkPolicySpec {
            ingress: Some(vec![]),
            egress: Some(vec![]),
            ..stored.clone()
        };
        assert!(same_policy(&stored, &derived));
        let open = NetworkPolicySpec {
            ingress: Some(vec![NetworkPolicyIngressRule::default()]),
            ..stored.clone()
        };
        assert!(!same_policy(&stored, &open));
    }
}
