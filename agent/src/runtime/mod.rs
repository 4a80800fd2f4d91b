//! Resolving a cgroup to the container and pod in it.

pub mod cgroup_path;
