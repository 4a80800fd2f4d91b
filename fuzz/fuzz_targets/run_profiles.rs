//! The files `imprint run` takes: a seccomp profile (OCI JSON or a
//! SeccompProfile), built into a libseccomp filter, and a capability set.
#![no_main]

use imprint::enforce::{filter, parse_capabilities, parse_profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(profile) = parse_profile(text) {
        let _ = filter(&profile);
    }
    let _ = parse_capabilities(text);
});
