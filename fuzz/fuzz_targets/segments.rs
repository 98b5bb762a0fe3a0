//! Turns fuzzer bytes into a connection's segments: each segment is a control byte (bit 0:
//! which side sent it; bits 1-7: how many bytes follow, 0-127), a second byte saying how
//! many of them the capture missed (0-255 beyond what follows), then the bytes.

use wire::stream::{ConnectionParser, Segment, Side};

pub fn feed<P: ConnectionParser>(mut parser: P, mut data: &[u8]) -> Vec<P::Record> {
    let mut out = Vec::new();
    let mut time_ns = 0;
    while let [control, missing, rest @ ..] = data {
        let take = usize::from(control >> 1).min(rest.len());
        let (bytes, after) = rest.split_at(take);
        time_ns += 1000;
        parser.feed(
            &Segment {
                time_ns,
                tid: 1,
                from: if control & 1 == 0 { Side::Client } else { Side::Server },
                bytes,
                len: take as u64 + u64::from(*missing),
                python_stack_id: None,
            },
            &mut out,
        );
        data = after;
    }
    parser.close(time_ns + 1, &mut out);
    parser.unparsed();
    out
}
