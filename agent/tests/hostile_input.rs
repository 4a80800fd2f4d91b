//! Every input the fuzz targets keep (fuzz/corpus: seeds; fuzz/regressions:
//! inputs that once crashed a parser) replayed through the same parsers
//! and consumers, so a crash found once stays fixed (scripts/fuzz.sh).

#[path = "../../fuzz/fuzz_targets/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use imprint::capture::aggregate::Aggregator;
use imprint::capture::decode::{decode, join_components, normalize_lexically};
use imprint::normalize::normalize_path;
use imprint::runtime::cgroup_path;
use imprint_crd::report::ContainerBehaviorReport;

/// The inputs kept for `target`, seeds and regressions.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut found = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for entry in dir.flatten() {
            found.push((entry.path(), std::fs::read(entry.path()).unwrap()));
        }
    }
    found
}

fn seeded(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let found = inputs(target);
    assert!(!found.is_empty(), "no inputs kept for {target}");
    found
}

#[test]
fn ring_records() {
    let mut decoded = 0;
    for (_, data) in seeded("ring_record") {
        if let Ok(event) = decode(&data) {
            decoded += 1;
            Aggregator::default().add(&event);
        }
    }
    assert!(
        decoded > 0,
        "no seed decodes: the seeds no longer match the records"
    );
}

#[test]
fn cgroup_paths() {
    let mut named = 0;
    for (_, data) in seeded("cgroup_path") {
        let text = String::from_utf8_lossy(&data);
        let (path, reported) = text.split_once('\n').unwrap_or((&text, ""));
        for identity in cgroup_path::candidates(path) {
            named += usize::from(cgroup_path::made_by_runtime(&identity, reported));
        }
    }
    assert!(named > 0, "no seed names its container");
}

#[test]
fn file_paths() {
    for (_, data) in seeded("paths") {
        let joined = join_components(&data);
        let text = String::from_utf8_lossy(&data);
        for path in [joined.as_str(), &text] {
            let _ = normalize_path(&normalize_lexically(path));
        }
    }
}

#[test]
fn report_files() {
    let mut parsed = 0;
    for (path, data) in seeded("report_text") {
        if let Ok(report) = imprint::report::parse(&String::from_utf8_lossy(&data)) {
            parsed += 1;
            common::consume(report.spec);
        } else {
            assert!(
                path.to_string_lossy().contains("regressions"),
                "seed {path:?} does not parse"
            );
        }
    }
    assert!(parsed > 0);
}

#[test]
fn report_resources() {
    for (_, data) in seeded("report_resource") {
        if let Ok(report) = serde_json::from_slice::<ContainerBehaviorReport>(&data) {
            common::consume(report.spec);
        }
    }
}

#[test]
fn run_profiles() {
    let mut filters = 0;
    for (_, data) in seeded("run_profiles") {
        let text = String::from_utf8_lossy(&data);
        if let Ok(profile) = imprint::enforce::parse_profile(&text) {
            filters += usize::from(imprint::enforce::filter(&profile).is_ok());
        }
        let _ = imprint::enforce::parse_capabilities(&text);
    }
    assert!(filters > 0, "no seed profile builds a filter");
}
