//! The Redis parser on conversations with Redis 7.0.15, in RESP2 and RESP3, requests written
//! by hand from the RESP specification (fixtures/make_cache_fixtures.py).

mod common;

use common::{
    CacheSummary, TID, assert_same_cache_records_however_cut, cache_summaries, capture_prefix,
    capture_prefix_of_response, client_segment_with, expect_cache, load, run,
};
use wire::records::{CacheRecord, CacheSystem};
use wire::redis::RedisParser;
use wire::stream::{ConnectionParser, Unparsed};

const BIG: u64 = 71_680;
/// After SUBSCRIBE: PING and the push that answers it (RESP2), or its reply (RESP3).
const SUBSCRIBED_RESP2: u64 = 14 + 20;
const SUBSCRIBED_RESP3: u64 = 14 + 7;

fn parse(name: &str, unparsed_bytes: u64) -> Vec<CacheRecord> {
    let (records, parser) = run(RedisParser::new(), &load(name));
    let unparsed = Unparsed {
        messages: 0,
        bytes: unparsed_bytes,
    };
    assert_eq!(parser.unparsed(), unparsed, "{name}");
    records
}

fn resp2_expected() -> Vec<CacheSummary> {
    expect_cache(&[
        ("set", Some("foo"), 1, None, 3, None),
        ("get", Some("foo"), 1, Some(1), 3, None),
        ("get", Some("nope"), 1, Some(0), 0, None),
        // The pipeline.
        ("set", Some("a"), 1, None, 1, None),
        ("set", Some("b"), 1, None, 2, None),
        ("mget", Some("a"), 3, Some(2), 3, None),
        ("del", Some("a"), 3, None, 0, None),
        ("exists", Some("a"), 3, Some(1), 0, None),
        ("hset", Some("h"), 1, None, 5, None),
        ("hget", Some("h"), 1, Some(1), 2, None),
        ("hget", Some("h"), 1, Some(0), 0, None),
        ("hmget", Some("h"), 1, Some(2), 5, None),
        ("hgetall", Some("h"), 1, None, 9, None),
        (
            "incr",
            Some("foo"),
            1,
            None,
            0,
            Some("ERR value is not an integer or out of range"),
        ),
        (
            "get",
            Some("h"),
            1,
            None,
            0,
            Some("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ),
        (
            "foobar",
            Some("x"),
            1,
            None,
            0,
            Some("ERR unknown command 'FOOBAR', with args beginning with: 'x' "),
        ),
        // Inline commands.
        ("ping", None, 0, None, 0, None),
        ("exists", Some("foo"), 2, Some(1), 0, None),
        ("set", Some("big"), 1, None, BIG, None),
        ("get", Some("big"), 1, Some(1), BIG, None),
        // Queued in a MULTI: their replies come with EXEC's.
        ("multi", None, 0, None, 0, None),
        ("set", Some("m"), 1, None, 1, None),
        ("get", Some("m"), 1, None, 0, None),
        ("exec", None, 0, None, 0, None),
        ("setex", Some("s"), 1, None, 3, None),
        ("append", Some("foo"), 1, None, 3, None),
        ("mset", Some("x"), 2, None, 3, None),
        ("eval", Some("foo"), 1, None, 0, None),
        ("subscribe", None, 0, None, 0, None),
    ])
}

fn resp3_expected() -> Vec<CacheSummary> {
    let mut rows = vec![
        ("hello", None, 0, None, 0, None),
        ("set", Some("foo"), 1, None, 3, None),
        ("mget", Some("foo"), 2, Some(1), 3, None),
        ("get", Some("nope"), 1, Some(0), 0, None),
        ("hset", Some("h3"), 1, None, 1, None),
        ("hgetall", Some("h3"), 1, None, 2, None),
        ("sadd", Some("s3"), 1, None, 2, None),
        ("smembers", Some("s3"), 1, None, 2, None),
        ("zadd", Some("z3"), 1, None, 0, None),
        ("zscore", Some("z3"), 1, None, 0, None),
        ("client", None, 0, None, 0, None),
        ("get", Some("foo"), 1, Some(1), 3, None),
        // Its reply is followed by an invalidation push for the GET before.
        ("set", Some("foo"), 1, None, 3, None),
        ("get", Some("foo"), 1, Some(1), 3, None),
    ];
    // DEBUG PROTOCOL bignum, double, attrib, push, verbatim, true, map, set.
    rows.extend([("debug", None, 0, None, 0, None); 8]);
    rows.extend([
        (
            "get",
            None,
            0,
            None,
            0,
            Some("ERR wrong number of arguments for 'get' command"),
        ),
        ("subscribe", None, 0, None, 0, None),
    ]);
    expect_cache(&rows)
}

#[test]
fn resp2_reads_writes_errors_and_latency() {
    let records = parse("redis_resp2.seg", SUBSCRIBED_RESP2);
    assert_eq!(cache_summaries(&records), resp2_expected());
    for record in &records {
        assert_eq!(record.system, CacheSystem::Redis);
        assert_eq!((record.tid, record.python_stack_id), (TID, Some(7)));
        assert!(
            record.complete && record.latency_ns.is_some_and(|l| l > 0),
            "{record:?}"
        );
    }
}

#[test]
fn resp3_types_pushes_and_attributes() {
    let records = parse("redis_resp3.seg", SUBSCRIBED_RESP3);
    assert_eq!(cache_summaries(&records), resp3_expected());
    assert!(
        records
            .iter()
            .all(|r| r.complete && r.latency_ns.is_some_and(|l| l > 0))
    );
}

#[test]
fn pipelined_requests_pair_in_order() {
    let segments = load("redis_resp2.seg");
    let sent = client_segment_with(&segments, b"MGET");
    let answered = &segments[sent + 1];
    let records = parse("redis_resp2.seg", SUBSCRIBED_RESP2);
    for record in &records[3..8] {
        assert_eq!(record.time_ns, segments[sent].time_ns);
        assert_eq!(
            record.latency_ns,
            Some((answered.time_ns - segments[sent].time_ns) as u64)
        );
    }
}

#[test]
fn same_records_however_the_stream_is_cut() {
    assert_same_cache_records_however_cut(
        RedisParser::new,
        &["redis_resp2.seg", "redis_resp3.seg"],
        0xbeef,
    );
}

#[test]
fn values_beyond_the_capture_prefix_are_skipped_by_length() {
    let mut segments = load("redis_resp2.seg");
    let set = client_segment_with(&segments, b"$3\r\nbig\r\n$71680");
    capture_prefix(&mut segments, set, 64);
    let get = client_segment_with(&segments, b"GET\r\n$3\r\nbig");
    capture_prefix_of_response(&mut segments, get, 64);
    let (records, parser) = run(RedisParser::new(), &segments);
    assert_eq!(cache_summaries(&records), resp2_expected());
    assert_eq!(parser.unparsed().messages, 0);
    let cut: Vec<_> = records.iter().filter(|r| !r.complete).collect();
    assert_eq!(cut.len(), 2);
    assert!(cut.iter().all(|r| r.key.as_deref() == Some("big")));
}

#[test]
fn lost_framing_gives_incomplete_records_and_resyncs() {
    let mut segments = load("redis_resp2.seg");
    let sent = client_segment_with(&segments, b"MGET");
    // The pipeline's replies, cut inside the MGET's array.
    capture_prefix(&mut segments, sent + 1, 14);
    let (records, parser) = run(RedisParser::new(), &segments);
    let mut expected = resp2_expected();
    // Their replies were in the hole.
    expected[5].3 = None;
    expected[5].4 = 0;
    expected[7].3 = None;
    assert_eq!(cache_summaries(&records), expected);
    let incomplete: Vec<_> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.complete)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(incomplete, [5, 6, 7]);
    let end = segments[sent + 1].time_ns - segments[sent].time_ns;
    assert!(
        records[5..8]
            .iter()
            .all(|r| r.latency_ns == Some(end as u64))
    );
    assert_eq!(parser.unparsed().messages, 1);
}

#[test]
fn connection_older_than_the_trace() {
    let segments = load("redis_resp2.seg");
    // The trace begins inside the 70 kB value being stored.
    let set = client_segment_with(&segments, b"$3\r\nbig\r\n$71680");
    let (records, parser) = run(RedisParser::new(), &segments[set + 1..]);
    assert_eq!(cache_summaries(&records), resp2_expected()[19..].to_vec());
    // The value's tail, the +OK for it, then what follows SUBSCRIBE.
    let unparsed = parser.unparsed();
    assert_eq!(unparsed.bytes, segments[set + 1].len + SUBSCRIBED_RESP2);
    assert_eq!(unparsed.messages, 1);
}
