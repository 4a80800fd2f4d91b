//! imprint's Kubernetes resource types.
//!
//! - [`report::ContainerBehaviorReport`]: what one node saw one container do.
//!   The same document is written as a file by `imprint record` and as a
//!   custom resource by the node agent.
//! - [`spo`]: security-profiles-operator's `SeccompProfile`, the contract the
//!   generated profiles meet.
//! - [`yaml`]: the one place that chooses the YAML crate.

pub mod profile;
pub mod report;
pub mod spo;
pub mod yaml;

/// API group of imprint's resources.
pub const GROUP: &str = "imprint.dev";
/// API version of imprint's resources.
pub const VERSION: &str = "v1alpha1";
