//! A report file (JSON or YAML), as `imprint recommend` reads it.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(report) = imprint::report::parse(text)
    {
        common::consume(report.spec);
    }
});
