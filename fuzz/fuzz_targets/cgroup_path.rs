//! A cgroup path (a container that can write cgroupfs names its own
//! children) and, after a newline, the cgroup path a runtime reports.
#![no_main]

use imprint::runtime::cgroup_path::{candidates, made_by_runtime, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, reported) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = parse(path);
    for identity in candidates(path) {
        let _ = made_by_runtime(&identity, reported);
    }
});
