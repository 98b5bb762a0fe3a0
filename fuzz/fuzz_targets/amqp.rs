#![no_main]

#[path = "segments.rs"]
mod segments;

use libfuzzer_sys::fuzz_target;
use wire::amqp::AmqpParser;

fuzz_target!(|data: &[u8]| {
    for message in segments::feed(AmqpParser::new(), data) {
        assert!(message.body.len() as u64 <= message.body_size);
    }
});
