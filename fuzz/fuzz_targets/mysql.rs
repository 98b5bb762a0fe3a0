#![no_main]

#[path = "segments.rs"]
mod segments;

use libfuzzer_sys::fuzz_target;
use wire::mysql::MysqlParser;
use wire::sql_text::{fingerprint, normalize};

fuzz_target!(|data: &[u8]| {
    for record in segments::feed(MysqlParser::new(), data) {
        fingerprint(&normalize(&record.statement));
    }
});
