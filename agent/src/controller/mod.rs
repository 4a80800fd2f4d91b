//! The cluster controller: [`merge`] is its pure core (a workload's reports
//! in, profile and phase out), [`run`] the loop that watches reports and
//! writes BehaviorProfiles and SeccompProfiles, [`leader`] the Lease that
//! lets one replica act, [`store`] its compact copy of the reports.

pub mod leader;
pub mod merge;
pub mod run;
pub mod store;
