#![no_main]

#[path = "segments.rs"]
mod segments;

use libfuzzer_sys::fuzz_target;
use wire::http::{HttpParser, route};

fuzz_target!(|data: &[u8]| {
    for record in segments::feed(HttpParser::new(), data) {
        assert!(record.status.is_none_or(|s| s < 1000));
        // A route has no id left to replace.
        let once = route(&record.path);
        assert_eq!(route(&once), once);
    }
});
