//! A ring-buffer record, as the kernel side hands it over (a container
//! controls paths, argv and addresses in it): decoded, then aggregated.
#![no_main]

use imprint::capture::aggregate::Aggregator;
use imprint::capture::decode::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = decode(data) {
        let mut aggregator = Aggregator::default();
        aggregator.add(&event);
        aggregator.add(&event);
    }
});
