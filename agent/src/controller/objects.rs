//! The objects the controller writes: their names, labels and owner
//! references, built in one place.

use std::collections::BTreeMap;

use imprint_crd::profile::{BehaviorProfile, BehaviorProfileSpec};
use imprint_crd::report::{ContainerBehaviorReport, ContainerBehaviorReportSpec, WorkloadRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::kube_names::{label_value, object_name};
use crate::publish::{MAX_REPORT_BYTES, bound, labels};

/// Field manager of the controller's server-side applies.
pub const FIELD_MANAGER: &str = "imprint-controller";

/// Label marking objects the controller made.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "imprint");
/// Label naming the BehaviorProfile a SeccompProfile comes from: namespace.
pub const PROFILE_NAMESPACE: &str = "imprint.dev/profile-namespace";
/// Label naming the BehaviorProfile a SeccompProfile comes from: name.
pub const PROFILE_NAME: &str = "imprint.dev/profile-name";

/// Name of the BehaviorProfile of a workload.
pub fn profile_name(workload: &WorkloadRef) -> String {
    object_name(
        &format!("{}-{}", workload.kind.to_ascii_lowercase(), workload.name),
        253,
    )
}

/// Name of the SeccompProfile of one container of a workload.
pub fn seccomp_name(namespace: &str, workload: &WorkloadRef, container: &str) -> String {
    object_name(&format!("{namespace}-{}-{container}", workload.name), 253)
}

/// Name of the report that keeps the folded reports of deleted pods.
pub fn archive_name(profile: &str, container: &str) -> String {
    object_name(&format!("{profile}-{container}-archive"), 253)
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
    let name = archive_name(&profile.name_any(), container);
    let mut labels = labels::of_workload(&profile.spec.workload, Some(container));
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
        assert_eq!(seccomp_name("shop", &web, "nginx"), "shop-web-nginx");
        assert_eq!(
            archive_name("deployment-web", "nginx"),
            "deployment-web-nginx-archive"
        );
        let long = WorkloadRef {
            kind: "Deployment".into(),
            name: "x".repeat(300),
        };
        assert!(profile_name(&long).len() <= 253);
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
        let archive = archive(&profile, "nginx", &ContainerBehaviorReportSpec::default());
        assert_eq!(
            archive.metadata.name.as_deref(),
            Some("deployment-web-nginx-archive")
        );
        assert_eq!(archive.metadata.labels.unwrap()[labels::ARCHIVE], "true");
        assert_eq!(archive.metadata.owner_references.unwrap()[0].uid, "uid-1");
    }
}
