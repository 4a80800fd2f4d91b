//! security-profiles-operator's `SeccompProfile`, the part imprint writes.
//!
//! `v1` is cluster-scoped (SPO >= 0.9); [`v1beta1`] is namespaced and served
//! by older releases. Both share [`SeccompProfileSpec`]. The CRDs themselves
//! are SPO's; imprint never installs them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of security-profiles-operator.
pub const GROUP: &str = "security-profiles-operator.x-k8s.io";

/// A seccomp profile as security-profiles-operator stores it (v1, cluster-scoped).
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "security-profiles-operator.x-k8s.io",
    version = "v1",
    kind = "SeccompProfile",
    plural = "seccompprofiles",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfileSpec {
    /// Action for syscalls no rule matches (`SCMP_ACT_ERRNO` for imprint).
    pub default_action: String,
    /// Architectures the profile covers (`SCMP_ARCH_X86_64`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Rules, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<SyscallRule>,
    /// A profile unioned into this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_profile_name: Option<String>,
}

/// One seccomp rule: an action for a set of syscall names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// `SCMP_ACT_ALLOW`, ...
    pub action: String,
    /// Syscall names, sorted.
    pub names: Vec<String>,
    /// errno returned by `SCMP_ACT_ERRNO` rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Conditions on the arguments, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgumentRule>,
}

/// A condition on one argument: `op` compares it with `value`; for
/// `SCMP_CMP_MASKED_EQ`, `(argument & value) == valueTwo`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgumentRule {
    /// Argument position, from 0.
    pub index: u32,
    /// The value compared with (the mask, for `SCMP_CMP_MASKED_EQ`).
    pub value: u64,
    /// The masked value, for `SCMP_CMP_MASKED_EQ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_two: Option<u64>,
    /// `SCMP_CMP_EQ`, `SCMP_CMP_MASKED_EQ`, ...
    pub op: String,
}

/// The namespaced `v1beta1` API of older security-profiles-operator releases.
pub mod v1beta1 {
    use super::*;

    /// A seccomp profile as security-profiles-operator <= 0.10 stores it.
    #[derive(
        CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
    )]
    #[kube(
        group = "security-profiles-operator.x-k8s.io",
        version = "v1beta1",
        kind = "SeccompProfile",
        plural = "seccompprofiles",
        namespaced,
        derive = "PartialEq"
    )]
    #[serde(rename_all = "camelCase")]
    pub struct SeccompProfileSpec {
        /// Same fields as the v1 spec.
        #[serde(flatten)]
        pub profile: super::SeccompProfileSpec,
    }
}
