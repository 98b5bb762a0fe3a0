//! The memcached parser on conversations with memcached 1.6.18, requests written by hand from
//! its protocol.txt (fixtures/make_cache_fixtures.py).

mod common;

use common::{
    CacheSummary, TID, assert_same_cache_records_however_cut, cache_summaries, capture_prefix,
    capture_prefix_of_response, client_segment_with, expect_cache, load, run,
};
use wire::memcached::MemcachedParser;
use wire::records::{CacheRecord, CacheSystem};
use wire::stream::{ConnectionParser, Unparsed};

fn parse(name: &str) -> Vec<CacheRecord> {
    let (records, parser) = run(MemcachedParser::new(), &load(name));
    assert_eq!(parser.unparsed(), Unparsed::default(), "{name}");
    records
}

const BIG: u64 = 71_680;

fn text_expected() -> Vec<CacheSummary> {
    expect_cache(&[
        ("set", Some("k"), 1, None, 5, None),
        ("get", Some("k"), 1, Some(1), 5, None),
        ("get", Some("nope"), 1, Some(0), 0, None),
        ("set", Some("k2"), 1, None, 3, None),
        // Two hits of three keys.
        ("get", Some("k"), 3, Some(2), 8, None),
        ("gets", Some("k"), 1, Some(1), 5, None),
        ("cas", Some("k"), 1, None, 3, None),
        ("cas", Some("nope"), 1, None, 1, None),
        ("add", Some("k"), 1, None, 1, None),
        ("append", Some("k"), 1, None, 3, None),
        // The pipeline.
        ("set", Some("a"), 1, None, 1, None),
        ("set", Some("b"), 1, None, 2, None),
        ("get", Some("a"), 3, Some(2), 3, None),
        ("delete", Some("a"), 1, None, 0, None),
        ("delete", Some("a"), 1, None, 0, None),
        ("incr", Some("n"), 1, None, 0, None),
        ("set", Some("n"), 1, None, 2, None),
        ("incr", Some("n"), 1, None, 0, None),
        ("decr", Some("n"), 1, None, 0, None),
        (
            "incr",
            Some("k"),
            1,
            None,
            0,
            Some("CLIENT_ERROR cannot increment or decrement non-numeric value"),
        ),
        ("touch", Some("k"), 1, None, 0, None),
        ("gat", Some("k"), 2, Some(1), 8, None),
        // noreply: no reply, and the get after them has its own.
        ("set", Some("q"), 1, None, 1, None),
        ("delete", Some("q"), 1, None, 0, None),
        ("get", Some("q"), 1, Some(0), 0, None),
        ("bogus", None, 0, None, 0, Some("ERROR")),
        // A block longer than said: memcached refuses it and reads its tail as a command.
        (
            "set",
            Some("k"),
            1,
            None,
            3,
            Some("CLIENT_ERROR bad data chunk"),
        ),
        ("f", None, 0, None, 0, Some("ERROR")),
        ("set", Some("big"), 1, None, BIG, None),
        ("get", Some("big"), 1, Some(1), BIG, None),
        ("version", None, 0, None, 0, None),
        ("verbosity", None, 0, None, 0, None),
        ("stats", None, 0, None, 0, None),
        ("stats", None, 0, None, 0, None),
        ("flush_all", None, 0, None, 0, None),
    ])
}

#[test]
fn text_commands_hits_bytes_errors_and_latency() {
    let records = parse("memcached_text.seg");
    assert_eq!(cache_summaries(&records), text_expected());
    for record in &records {
        assert_eq!(record.system, CacheSystem::Memcached);
        assert_eq!((record.tid, record.python_stack_id), (TID, Some(7)));
        assert!(record.complete, "{record:?}");
        let noreply = record.key.as_deref() == Some("q") && record.command != "get";
        assert_eq!(
            record.latency_ns.is_some_and(|l| l > 0),
            !noreply,
            "{record:?}"
        );
    }
}

#[test]
fn pipelined_requests_pair_in_order() {
    let segments = load("memcached_text.seg");
    let sent = client_segment_with(&segments, b"set a 0 0 1");
    let answered = &segments[sent + 1];
    let records = parse("memcached_text.seg");
    for record in &records[10..15] {
        assert_eq!(record.time_ns, segments[sent].time_ns);
        assert_eq!(
            record.latency_ns,
            Some((answered.time_ns - segments[sent].time_ns) as u64)
        );
    }
}

#[test]
fn meta_commands_and_quiet_pipelines() {
    let records = parse("memcached_meta.seg");
    let expected = expect_cache(&[
        ("ms", Some("mk"), 1, None, 5, None),
        ("mg", Some("mk"), 1, Some(1), 5, None),
        ("mg", Some("mk"), 1, Some(1), 0, None),
        ("mg", Some("nope"), 1, Some(0), 0, None),
        // mg mk v q k / mg nope v q k / mg mk q O123 / mn: the miss goes unsaid.
        ("mg", Some("mk"), 1, Some(1), 5, None),
        ("mg", Some("nope"), 1, Some(0), 0, None),
        ("mg", Some("mk"), 1, Some(1), 0, None),
        ("mn", None, 0, None, 0, None),
        // A quiet store says nothing, a quiet add of an existing key says NS.
        ("ms", Some("mk"), 1, None, 3, None),
        ("ms", Some("mk"), 1, None, 1, None),
        ("mn", None, 0, None, 0, None),
        ("md", Some("nope"), 1, None, 0, None),
        ("md", Some("mk"), 1, None, 0, None),
        ("mn", None, 0, None, 0, None),
        ("ma", Some("cnt"), 1, None, 2, None),
        ("ma", Some("cnt"), 1, None, 2, None),
        ("ma", Some("nope"), 1, None, 0, None),
        ("me", Some("cnt"), 1, None, 0, None),
        ("mg", None, 0, None, 0, Some("ERROR")),
        (
            "ms",
            Some("mk"),
            1,
            None,
            0,
            Some("CLIENT_ERROR bad command line format"),
        ),
        ("mn", None, 0, None, 0, None),
    ]);
    assert_eq!(cache_summaries(&records), expected);
    assert!(
        records
            .iter()
            .all(|r| r.complete && r.latency_ns.is_some_and(|l| l > 0))
    );
    // Answered in silence: known when the mn's reply came.
    let (miss, noop) = (&records[5], &records[7]);
    assert_eq!(
        miss.time_ns + miss.latency_ns.unwrap() as i64,
        noop.time_ns + noop.latency_ns.unwrap() as i64
    );
}

#[test]
fn same_records_however_the_stream_is_cut() {
    assert_same_cache_records_however_cut(
        MemcachedParser::new,
        &["memcached_text.seg", "memcached_meta.seg"],
        0xcafe,
    );
}

#[test]
fn values_beyond_the_capture_prefix_are_skipped_by_length() {
    let mut segments = load("memcached_text.seg");
    let set = client_segment_with(&segments, b"set big");
    capture_prefix(&mut segments, set, 64);
    let get = client_segment_with(&segments, b"get big");
    capture_prefix_of_response(&mut segments, get, 64);
    let (records, parser) = run(MemcachedParser::new(), &segments);
    assert_eq!(cache_summaries(&records), text_expected());
    assert_eq!(parser.unparsed(), Unparsed::default());
    let cut: Vec<_> = records.iter().filter(|r| !r.complete).collect();
    assert_eq!(cut.len(), 2);
    assert!(cut.iter().all(|r| r.key.as_deref() == Some("big")));
}

#[test]
fn a_reply_cut_before_its_end_ends_at_the_end_its_length_gives() {
    // The capture keeps 10 bytes of the reply's last segment: the value's tail, its
    // "\r\n" and END are all in the hole.
    let mut segments = load("memcached_text.seg");
    let get = client_segment_with(&segments, b"get big");
    let last = get + 2;
    assert!(segments[last].bytes.ends_with(b"\r\nEND\r\n") && segments[last].bytes.len() > 10);
    capture_prefix(&mut segments, last, 10);
    let (records, parser) = run(MemcachedParser::new(), &segments);
    assert_eq!(cache_summaries(&records), text_expected());
    assert_eq!(parser.unparsed(), Unparsed::default());
    let big = &records[29];
    assert!(!big.complete);
    assert_eq!(
        big.latency_ns,
        Some((segments[last].time_ns - segments[get].time_ns) as u64)
    );
}

#[test]
fn lost_framing_gives_incomplete_records_and_resyncs() {
    let mut segments = load("memcached_text.seg");
    let sent = client_segment_with(&segments, b"set a 0 0 1");
    // The pipeline's replies, cut inside the second STORED.
    capture_prefix(&mut segments, sent + 1, 10);
    let (records, parser) = run(MemcachedParser::new(), &segments);
    let mut expected = text_expected();
    // The get's VALUE lines were in the hole.
    (expected[12].3, expected[12].4) = (None, 0);
    assert_eq!(cache_summaries(&records), expected);
    let incomplete: Vec<_> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.complete)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(incomplete, [11, 12, 13, 14]);
    // Their ends are unknown but for the last server bytes before the next request.
    let end = segments[sent + 1].time_ns - segments[sent].time_ns;
    assert!(
        records[11..15]
            .iter()
            .all(|r| r.latency_ns == Some(end as u64))
    );
    assert_eq!(parser.unparsed().messages, 1);
}

#[test]
fn connection_older_than_the_trace() {
    let segments = load("memcached_text.seg");
    // The trace begins inside the 70 kB value being stored.
    let set = client_segment_with(&segments, b"set big");
    let (records, parser) = run(MemcachedParser::new(), &segments[set + 1..]);
    assert_eq!(cache_summaries(&records), text_expected()[29..].to_vec());
    // The value's tail, and the STORED for it.
    let unparsed = parser.unparsed();
    assert_eq!(unparsed.bytes, segments[set + 1].len);
    assert_eq!(unparsed.messages, 1);
}
