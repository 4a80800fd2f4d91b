//! The objects the controller writes: their names, labels and owner
//! references, built in one place.

use std::collections::BTreeMap;

use imprint_crd::profile::{BehaviorProfile, BehaviorProfileSpec};
use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec, WorkloadRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::kube_names::{injective_name, label_value};
use crate::publish::{MAX_REPORT_BYTES, bound, labels};

/// Field manager of the controller's server-side applies.
pub const FIELD_MANAGER: &str = "imprint-controller";

/// Label marking objects the controller made.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "imprint");
/// Label naming the BehaviorProfile a SeccompProfile comes from: namespace.
pub const PROFILE_NAMESPACE: &str = "imprint.dev/profile-namespace";
/// Label naming the BehaviorProfile a SeccompProfile comes from: name.
pub const PROFILE_NAME: &str = "imprint.dev/profile-name";
/// Label naming the BehaviorProfile an object belongs to by UID: the
/// controller writes over an existing object, and collects an orphan, only
/// by this label.
pub const PROFILE_UID: &str = "imprint.dev/profile-uid";

/// Hex digits of the hash in a cluster-scoped name (tenants of different
/// namespaces must never meet: 64 bits).
const CLUSTER_HASH: usize = 16;
/// Hex digits of the hash in a namespaced name.
const NAMESPACED_HASH: usize = 8;

/// Name of the BehaviorProfile of a workload: `<kind>-<name>`, injective
/// within a namespace since a kind has no `-` (a name too long for that is
/// cut and given a hash; the profile's `spec.workload` is checked anyway).
pub fn profile_name(workload: &WorkloadRef) -> String {
    crate::kube_names::profile_name(workload)
}

/// Name of the (cluster-scoped) SeccompProfile of one container of a
/// workload: `<namespace>-<workload>-<container>-<hash>`, the hash (16 hex
/// digits) over namespace, workload kind, workload name and container.
pub fn seccomp_name(namespace: &str, workload: &WorkloadRef, container: &str) -> String {
    injective_name(
        &format!("SeccompProfile/{}", workload.kind),
        &[namespace, &workload.name, container],
        CLUSTER_HASH,
    )
}

/// Name of the report that keeps the folded reports of deleted pods:
/// `<profile>-<container>-archive-<hash>` (8 hex digits over both names).
pub fn archive_name(profile: &str, container: &str) -> String {
    injective_name("archive", &[profile, container, "archive"], NAMESPACED_HASH)
}

/// The names an earlier release gave (not injective): objects found under
/// them are adopted (kept, under that name) when they are this profile's.
pub mod legacy {
    use imprint_crd::report::WorkloadRef;

    use crate::kube_names::object_name;

    /// `<namespace>-<workload>-<container>`.
    pub fn seccomp_name(namespace: &str, workload: &WorkloadRef, container: &str) -> String {
        object_name(&format!("{namespace}-{}-{container}", workload.name), 253)
    }

    /// `<profile>-<container>-archive`.
    pub fn archive_name(profile: &str, container: &str) -> String {
        object_name(&format!("{profile}-{container}-archive"), 253)
    }
}

/// Whose an existing object is, for a write the controller is about to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Labelled with this BehaviorProfile's UID (or owned by it).
    Ours,
    /// Made for this BehaviorProfile by an earlier release (its namespace
    /// and name labels, no UID label yet), or for an earlier profile of
    /// the same namespace and name (deleted, then made again): adopted at
    /// the next write.
    Earlier,
    /// Anyone else's: never written over.
    NotOurs,
}

/// Whose `meta` is: `profile`'s (by UID label), made for it or for an
/// earlier profile of its name (name labels or owner reference, and
/// `container`'s label), or not ours.
pub fn ownership(meta: &ObjectMeta, profile: &BehaviorProfile, container: &str) -> Ownership {
    let uid = profile.uid().unwrap_or_default();
    let label = |key: &str| meta.labels.as_ref()?.get(key).map(String::as_str);
    if !uid.is_empty() && label(PROFILE_UID) == Some(uid.as_str()) {
        return Ownership::Ours;
    }
    let owned = meta
        .owner_references
        .iter()
        .flatten()
        .any(|o| !uid.is_empty() && o.uid == uid);
    let named = label(MANAGED_BY.0) == Some(MANAGED_BY.1)
        && label(PROFILE_NAMESPACE)
            == Some(label_value(&profile.namespace().unwrap_or_default()).as_str())
        && label(PROFILE_NAME) == Some(label_value(&profile.name_any()).as_str());
    let same_container = label(labels::CONTAINER) == Some(label_value(container).as_str());
    if (owned || named) && same_container {
        Ownership::Earlier
    } else {
        Ownership::NotOurs
    }
}

/// The labels of an object the controller manages for `profile`.
pub fn managed_labels(
    profile: &BehaviorProfile,
    container: Option<&str>,
) -> BTreeMap<String, String> {
    let mut map = labels::of_workload(&profile.spec.workload, container);
    map.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    map.insert(
        PROFILE_NAMESPACE.to_string(),
        label_value(&profile.namespace().unwrap_or_default()),
    );
    map.insert(PROFILE_NAME.to_string(), label_value(&profile.name_any()));
    if let Some(uid) = profile.uid() {
        map.insert(PROFILE_UID.to_string(), label_value(&uid));
    }
    map
}

/// The BehaviorProfile as owner (archives and namespaced SeccompProfiles
/// go when it goes).
pub fn owner(profile: &BehaviorProfile) -> OwnerReference {
    OwnerReference {
        api_version: BehaviorProfile::api_version(&()).into_owned(),
        kind: BehaviorProfile::kind(&()).into_owned(),
        name: profile.name_any(),
        uid: profile.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A new BehaviorProfile for `workload` in `namespace` (empty spec).
pub fn new_profile(namespace: &str, workload: &WorkloadRef) -> BehaviorProfile {
    let mut labels = labels::of_workload(workload, None);
    labels.insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
    BehaviorProfile {
        metadata: ObjectMeta {
            name: Some(profile_name(workload)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: BehaviorProfileSpec {
            workload: workload.clone(),
            ..BehaviorProfileSpec::default()
        },
        status: None,
    }
}

/// The archive report of one container of `profile`'s workload, bounded.
pub fn archive(
    profile: &BehaviorProfile,
    container: &str,
    spec: &ContainerBehaviorReportSpec,
) -> ContainerBehaviorReport {
    archive_named(
        &archive_name(&profile.name_any(), container),
        profile,
        container,
        spec,
    )
}

/// [`archive`] under `name` (an archive an earlier release named).
pub fn archive_named(
    name: &str,
    profile: &BehaviorProfile,
    container: &str,
    spec: &ContainerBehaviorReportSpec,
) -> ContainerBehaviorReport {
    let name = name.to_string();
    let mut labels = managed_labels(profile, Some(container));
    labels.insert(labels::ARCHIVE.to_string(), "true".to_string());
    let mut bounded = spec.clone();
    bound(&mut bounded, MAX_REPORT_BYTES);
    let mut report = ContainerBehaviorReport::new(&name, bounded);
    report.metadata = ObjectMeta {
        name: Some(name),
        namespace: profile.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![owner(profile)]),
        ..ObjectMeta::default()
    };
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_shapes() {
        let web = WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        };
        assert_eq!(profile_name(&web), "deployment-web");
        let seccomp = seccomp_name("shop", &web, "nginx");
        assert!(seccomp.starts_with("shop-web-nginx-"), "{seccomp}");
        assert_eq!(seccomp.len(), "shop-web-nginx-".len() + 16);
        let archive = archive_name("deployment-web", "nginx");
        assert!(
            archive.starts_with("deployment-web-nginx-archive-"),
            "{archive}"
        );
        let long = WorkloadRef {
            kind: "Deployment".into(),
            name: "x".repeat(300),
        };
        assert!(profile_name(&long).len() <= 253);
        assert!(seccomp_name(&"n".repeat(63), &long, &"c".repeat(63)).len() <= 253);
        assert_eq!(
            legacy::seccomp_name("shop", &web, "nginx"),
            "shop-web-nginx"
        );
        assert_eq!(
            legacy::archive_name("deployment-web", "nginx"),
            "deployment-web-nginx-archive"
        );
    }

    /// The collisions of the earlier names: namespace `a-b` + Deployment
    /// `c` and namespace `a` + Deployment `b-c`; a Deployment and a
    /// StatefulSet of one name; an archive and a bare pod's report.
    #[test]
    fn names_never_collide_for_different_inputs() {
        let workload = |kind: &str, name: &str| WorkloadRef {
            kind: kind.into(),
            name: name.into(),
        };
        assert_eq!(
            legacy::seccomp_name("a-b", &workload("Deployment", "c"), "app"),
            legacy::seccomp_name("a", &workload("Deployment", "b-c"), "app"),
        );
        assert_ne!(
            seccomp_name("a-b", &workload("Deployment", "c"), "app"),
            seccomp_name("a", &workload("Deployment", "b-c"), "app"),
        );
        assert_ne!(
            seccomp_name("a", &workload("Deployment", "web"), "app"),
            seccomp_name("a", &workload("StatefulSet", "web"), "app"),
        );
        assert_ne!(
            seccomp_name("a", &workload("Deployment", "web"), "b-c"),
            seccomp_name("a", &workload("Deployment", "web-b"), "c"),
        );
        let pod_report = crate::publish::report_name("deployment-web-nginx", "archive");
        assert_ne!(pod_report, archive_name("deployment-web", "nginx"));
        assert_ne!(archive_name("a-b", "c"), archive_name("a", "b-c"));
    }

    #[test]
    fn only_this_profiles_objects_are_ours() {
        let web = WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        };
        let mut profile = new_profile("shop", &web);
        profile.metadata.uid = Some("uid-1".into());
        let meta = |labels: BTreeMap<String, String>, owner_uid: Option<&str>| ObjectMeta {
            labels: Some(labels),
            owner_references: owner_uid.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        };
        let ours = managed_labels(&profile, Some("nginx"));
        assert_eq!(
            ownership(&meta(ours.clone(), None), &profile, "nginx"),
            Ownership::Ours
        );
        let mut other = managed_labels(&profile, Some("nginx"));
        other.insert(PROFILE_UID.into(), "uid-2".into());
        assert_eq!(
            ownership(&meta(other.clone(), None), &profile, "nginx"),
            Ownership::Earlier,
            "a profile of this name deleted and made again"
        );
        other.insert(PROFILE_NAME.into(), "deployment-other".into());
        assert_eq!(
            ownership(&meta(other, None), &profile, "nginx"),
            Ownership::NotOurs,
            "another profile's"
        );
        let mut earlier = ours.clone();
        earlier.remove(PROFILE_UID);
        assert_eq!(
            ownership(&meta(earlier.clone(), None), &profile, "nginx"),
            Ownership::Earlier
        );
        assert_eq!(
            ownership(&meta(earlier.clone(), None), &profile, "redis"),
            Ownership::NotOurs,
            "another container's"
        );
        let mut elsewhere = earlier.clone();
        elsewhere.insert(PROFILE_NAMESPACE.into(), "other".into());
        assert_eq!(
            ownership(&meta(elsewhere.clone(), None), &profile, "nginx"),
            Ownership::NotOurs
        );
        assert_eq!(
            ownership(&meta(elsewhere, Some("uid-1")), &profile, "nginx"),
            Ownership::Earlier,
            "an archive of an earlier release is owned by the profile"
        );
        assert_eq!(
            ownership(&meta(BTreeMap::new(), None), &profile, "nginx"),
            Ownership::NotOurs,
            "made by hand"
        );
    }

    #[test]
    fn managed_objects_name_their_profile_and_workload() {
        let web = WorkloadRef {
            kind: "Deployment".into(),
            name: "web".into(),
        };
        let mut profile = new_profile("shop", &web);
        profile.metadata.uid = Some("uid-1".into());
        let labels = managed_labels(&profile, Some("nginx"));
        assert_eq!(labels[PROFILE_NAMESPACE], "shop");
        assert_eq!(labels[PROFILE_NAME], "deployment-web");
        assert_eq!(labels[labels::CONTAINER], "nginx");
        assert_eq!(labels[MANAGED_BY.0], MANAGED_BY.1);
        assert_eq!(labels[PROFILE_UID], "uid-1");
        let archive = archive(&profile, "nginx", &ContainerBehaviorReportSpec::default());
        assert_eq!(
            archive.metadata.name,
            Some(archive_name("deployment-web", "nginx"))
        );
        let labels = archive.metadata.labels.unwrap();
        assert_eq!(labels[labels::ARCHIVE], "true");
        assert_eq!(labels[PROFILE_UID], "uid-1");
        assert_eq!(archive.metadata.owner_references.unwrap()[0].uid, "uid-1");
    }
}
