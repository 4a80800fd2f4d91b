//! imprint: watches what processes and containers do from the kernel with
//! eBPF and turns it into the least privilege that still lets them run.
//!
//! The `imprint` binary (`main.rs`) is a thin CLI over these modules:
//! [`probes`] loads and attaches the kernel side, [`capture`] decodes and
//! aggregates its events, [`report`] builds `ContainerBehaviorReport`s,
//! [`recommend`] turns reports into profiles (pure), [`record`] and
//! [`enforce`] are the `record` and `run` commands; [`node`] is the
//! cluster's node agent (writing through [`publish`]) and [`controller`]
//! merges reports into profiles; both serve [`metrics`]. [`cleanup`]
//! releases the reports after an uninstall.

pub mod capture;
pub mod cgroups;
pub mod cleanup;
pub mod cluster;
pub mod controller;
pub mod enforce;
pub mod kube_names;
pub mod metrics;
pub mod names;
pub mod node;
pub mod normalize;
pub mod pipeline;
pub mod probes;
pub mod publish;
pub mod recommend;
pub mod record;
pub mod report;
pub mod runtime;
pub mod summary;
pub mod task;
