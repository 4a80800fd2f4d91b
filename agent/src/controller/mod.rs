//! The cluster controller: [`merge`] is its pure core (a workload's reports
//! in, profile and phase out), [`reconcile`] brings one workload's objects
//! up to date ([`status`], [`seccomp`], [`objects`]), [`run`] is the loop
//! that watches reports and profiles, [`leader`] the Lease that lets one
//! replica act, [`store`] its compact copy of the reports.

pub mod completeness;
pub mod error;
pub mod guard;
pub mod leader;
pub mod merge;
#[cfg(test)]
pub(crate) mod mock_api;
pub mod network_apply;
pub mod network_policy;
pub mod network_recommend;
pub mod network_view;
pub mod objects;
pub mod reconcile;
pub mod release;
pub mod run;
pub mod seccomp;
pub mod status;
pub mod store;
