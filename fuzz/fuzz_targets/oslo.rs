#![no_main]

#[path = "segments.rs"]
mod segments;

use libfuzzer_sys::fuzz_target;
use wire::amqp::AmqpParser;
use wire::oslo::{MessageOrigin, RpcPairing};
use wire::records::AmqpMessage;
use wire::stream::Side;

// The input is both a framed AMQP stream and, whole, one message body: the first reaches
// the JSON reader only through valid frames, the second reaches it directly.
fuzz_target!(|data: &[u8]| {
    let origin = MessageOrigin {
        pid: 1,
        conn_id: 1,
        traced_side: Side::Client,
    };
    let mut pairing = RpcPairing::new(1_000_000);
    let mut out = Vec::new();
    let raw = AmqpMessage {
        time_ns: 0,
        tid: 1,
        from: Side::Server,
        method: "basic.deliver",
        exchange: String::new(),
        routing_key: "reply_q".into(),
        correlation_id: None,
        reply_to: None,
        content_type: None,
        headers: Vec::new(),
        body: data.to_vec(),
        body_size: data.len() as u64 + 1,
        python_stack_id: None,
    };
    pairing.push(origin, &raw, &mut out);
    for message in segments::feed(AmqpParser::new(), data) {
        pairing.push(origin, &message, &mut out);
    }
    pairing.finish(&mut out);
});
