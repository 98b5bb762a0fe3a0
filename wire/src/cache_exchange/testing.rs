//! What the memcached and Redis parsers' unit tests share: feeding a parser a connection's
//! segments, and the records it made as rows to compare. (The integration tests have their
//! own in tests/common, which unit tests cannot reach; a row there has no latency.)

use crate::records::CacheRecord;
use crate::stream::{ConnectionParser, Segment, Side, Unparsed};

/// Feeds (time, side, captured bytes, true length) and closes at the end.
pub(crate) fn feed<P: ConnectionParser>(
    mut parser: P,
    segments: &[(i64, Side, &[u8], usize)],
) -> (Vec<P::Record>, Unparsed) {
    let mut out = Vec::new();
    for &(time_ns, from, bytes, len) in segments {
        let segment = Segment {
            time_ns,
            tid: 7,
            from,
            bytes,
            len: len as u64,
            python_stack_id: None,
        };
        parser.feed(&segment, &mut out);
    }
    parser.close(1_000, &mut out);
    (out, parser.unparsed())
}

pub(crate) fn whole(time_ns: i64, from: Side, bytes: &[u8]) -> (i64, Side, &[u8], usize) {
    (time_ns, from, bytes, bytes.len())
}

/// command, key, keys, hits, bytes, latency, error, complete.
pub(crate) type Summary = (
    String,
    Option<String>,
    u32,
    Option<u32>,
    u64,
    Option<u64>,
    Option<String>,
    bool,
);

pub(crate) fn summary(records: &[CacheRecord]) -> Vec<Summary> {
    records
        .iter()
        .map(|r| {
            (
                r.command.clone(),
                r.key.clone(),
                r.keys,
                r.hits,
                r.bytes,
                r.latency_ns,
                r.error.clone(),
                r.complete,
            )
        })
        .collect()
}

/// A complete record without an error.
pub(crate) fn row(
    command: &str,
    key: Option<&str>,
    keys: u32,
    hits: Option<u32>,
    bytes: u64,
    latency: Option<u64>,
) -> Summary {
    (
        command.into(),
        key.map(Into::into),
        keys,
        hits,
        bytes,
        latency,
        None,
        true,
    )
}
