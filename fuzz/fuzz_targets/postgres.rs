#![no_main]

#[path = "segments.rs"]
mod segments;

use libfuzzer_sys::fuzz_target;
use wire::postgres::PostgresParser;
use wire::sql_text::{fingerprint, normalize};

fuzz_target!(|data: &[u8]| {
    for record in segments::feed(PostgresParser::new(), data) {
        fingerprint(&normalize(&record.statement));
    }
});
