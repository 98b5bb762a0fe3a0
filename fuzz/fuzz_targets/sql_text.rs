#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::sql_text::{fingerprint, normalize};

fuzz_target!(|text: &str| {
    let normalized = normalize(text);
    // Normalizing is idempotent: a normalized statement has no literal left to replace.
    assert_eq!(normalize(&normalized), normalized);
    fingerprint(&normalized);
});
