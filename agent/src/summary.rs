//! The short human summary printed to stderr when a recording ends.

use std::fmt::Write as _;
use std::path::Path;

use imprint_crd::report::ContainerBehaviorReport;

/// One line per report: what was seen and what was lost.
pub fn line(report: &ContainerBehaviorReport, written_to: &Path) -> String {
    let s = &report.spec.stats;
    let needed = report.spec.capabilities.iter().filter(|c| c.needed).count();
    let mut text = String::new();
    let _ = write!(
        text,
        "{}: {} syscalls, {} files, {} execs, {} connections, {} capabilities ({} needed), {} drops",
        report.spec.subject.cgroup.as_deref().unwrap_or("?"),
        s.syscalls,
        s.files,
        s.executables,
        s.connections,
        s.capabilities,
        needed,
        s.drops.total,
    );
    if !s.truncated.is_empty() {
        let _ = write!(text, ", truncated: {}", s.truncated.join(","));
    }
    let _ = write!(text, " -> {}", written_to.display());
    text
}
