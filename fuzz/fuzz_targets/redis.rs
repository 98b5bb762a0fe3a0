#![no_main]

#[path = "segments.rs"]
mod segments;

use libfuzzer_sys::fuzz_target;
use wire::redis::RedisParser;

fuzz_target!(|data: &[u8]| {
    for record in segments::feed(RedisParser::new(), data) {
        // Keys and error texts are kept bounded (invalid UTF-8: a character per byte).
        assert!(record.key.as_ref().is_none_or(|k| k.chars().count() <= 250));
        assert!(
            record
                .error
                .as_ref()
                .is_none_or(|e| e.chars().count() <= 512)
        );
    }
});
