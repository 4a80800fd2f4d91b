//! A ContainerBehaviorReport custom resource as the API server hands it to
//! the controller (anyone who may write reports controls it).
#![no_main]

#[path = "common.rs"]
mod common;

use imprint_crd::report::ContainerBehaviorReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = serde_json::from_slice::<ContainerBehaviorReport>(data) {
        common::consume(report.spec);
    }
});
