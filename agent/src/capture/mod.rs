//! From raw probe events to per-cgroup behavior: [`decode`] turns ring
//! buffer records into typed [`decode::Event`]s, [`aggregate`] folds them
//! into one bounded [`aggregate::Behavior`] per cgroup.

pub mod aggregate;
pub mod decode;
