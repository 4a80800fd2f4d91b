//! File paths as a container makes them: the kernel's leaf-first
//! components, lexical normalisation and the report's path folding.
#![no_main]

use imprint::capture::decode::{join_components, normalize_lexically};
use imprint::normalize::normalize_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let joined = join_components(data);
    let text = String::from_utf8_lossy(data);
    for path in [joined.as_str(), &text] {
        let lexical = normalize_lexically(path);
        let _ = normalize_path(&lexical);
        let _ = normalize_path(path);
    }
});
