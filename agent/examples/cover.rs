//! Writes reports as the node agent writes them once their workload's
//! profile is Stable: covered by the profile, holding only what it lacks
//! (`imprint::coverage`, the agent's own rule). For benchmarks that write
//! reports through the API server without an agent.
//!
//! Usage: `cover PROFILE.json < REPORTS.jsonl > COVERED.jsonl`, PROFILE a
//! BehaviorProfile as the API server returns it, each line of REPORTS a
//! ContainerBehaviorReport (or any object with its `spec`); a report whose
//! container the profile does not hold is written whole.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use imprint::coverage::Base;
use imprint_crd::profile::BehaviorProfile;
use imprint_crd::report::{ContainerBehaviorReportSpec, Coverage};

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: cover PROFILE.json < REPORTS.jsonl")?;
    let profile: BehaviorProfile =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {path}"))?)
            .with_context(|| format!("{path} is not a BehaviorProfile"))?;
    let coverage = Coverage {
        profile: profile.metadata.name.clone().unwrap_or_default(),
        uid: profile
            .metadata
            .uid
            .clone()
            .context("the profile has no uid")?,
    };
    let containers = profile.status.map(|s| s.containers).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut object: serde_json::Value = serde_json::from_str(&line)?;
        let spec: ContainerBehaviorReportSpec =
            serde_json::from_value(object["spec"].take()).context("a report without a spec")?;
        let base = containers
            .iter()
            .find(|c| Some(&c.name) == spec.subject.container.as_ref())
            .and_then(Base::of);
        let written = match base {
            Some(base) => base.delta(&spec, None, coverage.clone()),
            None => spec,
        };
        object["spec"] = serde_json::to_value(&written)?;
        writeln!(out, "{}", serde_json::to_string(&object)?)?;
    }
    Ok(())
}
