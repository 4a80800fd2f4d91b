//! From raw probe events to per-cgroup behaviour: [`decode`] turns ring
//! buffer records into typed [`decode::Event`]s, [`aggregate`] folds them
//! into one bounded [`aggregate::Behaviour`] per cgroup.

pub mod aggregate;
pub mod decode;
