//! The cluster controller's pure core: merging a workload's reports into a
//! profile, and its phase (see [`merge`]).

pub mod merge;
