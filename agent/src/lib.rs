//! imprint: watches what processes and containers do from the kernel with
//! eBPF and turns it into the least privilege that still lets them run.
//!
//! The `imprint` binary (`main.rs`) is a thin CLI over these modules.
//! Commands (leaves: nothing imports them): [`record`] (standalone),
//! [`node`] (the cluster's node agent), [`controller`] (its `run` loop),
//! [`enforce`] (`imprint run`), [`cleanup`].
//! Both recording commands compose one [`pipeline`]: [`probes`] loads and
//! attaches the kernel side, [`capture`] decodes and aggregates its
//! events, [`runtime`] names the container behind a cgroup, [`cgroups`]
//! handles the hierarchy. `record` adds a file sink ([`report`]), the agent
//! a publisher ([`publish`], with [`cluster`] for pod, workload and peer
//! lookups). [`recommend`] (with [`argument_rules`]) and `controller::merge`
//! are pure: reports in, profiles out. [`metrics`], [`task`] and [`kube_names`] serve them all.

pub mod argument_rules;
pub mod capture;
pub mod cgroups;
pub mod cleanup;
pub mod cluster;
pub mod controller;
pub mod coverage;
pub mod detect;
pub mod enforce;
pub mod kube_names;
pub mod metrics;
pub mod monitor;
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
