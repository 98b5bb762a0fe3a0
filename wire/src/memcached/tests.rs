use super::*;
use crate::cache_exchange::testing::{feed, row, summary, whole};

/// Feeds (time, side, captured bytes, true length) and closes at the end.
fn parse(segments: &[(i64, Side, &[u8], usize)]) -> (Vec<CacheRecord>, Unparsed) {
    feed(MemcachedParser::new(), segments)
}

use Side::{Client as C, Server as S};

#[test]
fn pipelined_requests_pair_in_order_however_the_replies_are_cut() {
    let requests: &[u8] = b"set a 0 0 1\r\n1\r\nget a b\r\ndelete b noreply\r\nincr n 1\r\n";
    let replies: &[u8] = b"STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\nNOT_FOUND\r\n";
    let expected = [
        row("delete", Some("b"), 1, None, 0, None),
        row("set", Some("a"), 1, None, 1, Some(10)),
        row("get", Some("a"), 2, Some(1), 1, Some(10)),
        row("incr", Some("n"), 1, None, 0, Some(10)),
    ];
    for cut in 0..=replies.len() {
        let (records, unparsed) = parse(&[
            whole(10, C, requests),
            whole(20, S, &replies[..cut]),
            whole(20, S, &replies[cut..]),
        ]);
        assert_eq!(summary(&records), expected, "cut at {cut}");
        assert_eq!(unparsed, Unparsed::default());
    }
}

#[test]
fn errors_are_kept_bounded_and_end_a_retrieval() {
    let long = format!("SERVER_ERROR {}\r\n", "x".repeat(2000));
    let (records, _) = parse(&[
        whole(1, C, b"get a b\r\nset k 0 0 1\r\nx\r\nnonsense here\r\n"),
        whole(
            2,
            S,
            b"VALUE a 0 1\r\n1\r\nSERVER_ERROR out of memory writing get response\r\n",
        ),
        whole(3, S, long.as_bytes()),
        whole(4, S, b"ERROR\r\n"),
    ]);
    let errors: Vec<_> = records.iter().map(|r| r.error.as_deref()).collect();
    assert_eq!(
        errors[0],
        Some("SERVER_ERROR out of memory writing get response")
    );
    assert_eq!(records[0].hits, None);
    assert_eq!(errors[1].map(str::len), Some(ERROR_KEEP));
    assert_eq!(
        (records[2].command.as_str(), errors[2]),
        ("nonsense", Some("ERROR"))
    );
}

#[test]
fn a_value_cut_by_the_capture_is_skipped_by_length_and_its_end_assumed() {
    let head = b"VALUE big 0 100000\r\n";
    let (records, unparsed) = parse(&[
        whole(1, C, b"get big\r\n"),
        // Written whole with its END, captured up to its first line.
        (2, S, head, head.len() + 100_000 + 2 + 5),
        whole(3, C, b"set s 0 0 70000\r\n"),
        (4, C, b"abc", 70_002),
        whole(5, S, b"STORED\r\n"),
    ]);
    let mut expected = vec![
        row("get", Some("big"), 1, Some(1), 100_000, Some(1)),
        row("set", Some("s"), 1, None, 70_000, Some(2)),
    ];
    expected[0].7 = false;
    expected[1].7 = false;
    assert_eq!(summary(&records), expected);
    assert_eq!(unparsed, Unparsed::default());
}

#[test]
fn lost_reply_framing_costs_the_requests_waiting_then_pairs_again() {
    let (records, unparsed) = parse(&[
        whole(1, C, b"get a b\r\nget c\r\n"),
        // The hole holds more than the rest of the value: the other items, END, ...
        (2, S, b"VALUE a 0 10\r\n01", 14 + 12 + 40),
        whole(3, S, b"0\r\nEND\r\n"),
        whole(4, C, b"touch k 1\r\n"),
        whole(5, S, b"TOUCHED\r\n"),
    ]);
    let mut lost_a = row("get", Some("a"), 2, None, 10, Some(2));
    lost_a.7 = false;
    let mut lost_c = row("get", Some("c"), 1, None, 0, Some(2));
    lost_c.7 = false;
    assert_eq!(
        summary(&records),
        [lost_a, lost_c, row("touch", Some("k"), 1, None, 0, Some(1))]
    );
    assert_eq!(unparsed.messages, 1);
    assert_eq!(unparsed.bytes, 40 + 8);
}

#[test]
fn client_bytes_out_of_step_are_skipped_to_the_next_command() {
    let (records, unparsed) = parse(&[
        // The trace began inside a data block.
        whole(1, C, b"tail of a value\r\nget k\r\n"),
        whole(2, S, b"STORED\r\nEND\r\n"),
        // A line that names no command (memcached answers ERROR), then one that does.
        whole(3, C, b"\x01\x02 \r\ndelete k\r\n"),
        whole(4, S, b"ERROR\r\nNOT_FOUND\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            row("get", Some("k"), 1, Some(0), 0, Some(1)),
            row("delete", Some("k"), 1, None, 0, Some(1)),
        ]
    );
    // The tail before `get`, the reply STORED to a request not seen, the line that is none.
    assert_eq!(unparsed.bytes, 17);
    assert_eq!(unparsed.messages, 2);
}

#[test]
fn a_request_line_cut_by_the_capture_still_pairs() {
    let (records, unparsed) = parse(&[
        (1, C, b"get k1 k2 k", 200),
        whole(2, S, b"VALUE k1 0 1\r\n1\r\nEND\r\n"),
        whole(3, C, b"get k\r\n"),
        whole(4, S, b"END\r\n"),
    ]);
    let mut cut = row("get", Some("k1"), 3, Some(1), 1, Some(1));
    cut.7 = false;
    assert_eq!(
        summary(&records),
        [cut, row("get", Some("k"), 1, Some(0), 0, Some(1))]
    );
    assert_eq!(unparsed.bytes, 200 - 11);
}

#[test]
fn quiet_meta_requests_answered_in_silence() {
    let (records, _) = parse(&[
        whole(
            1,
            C,
            b"mg a v q k\r\nmg b v q k\r\nms c 1 q O1\r\nx\r\nms d 1 q O2\r\ny\r\nmd e q\r\nmn\r\n",
        ),
        // a missed (EN unsaid), b hit, c stored (HD unsaid), d not stored, e deleted (HD
        // unsaid): the key and the opaque name the replies.
        whole(2, S, b"VA 2 kb\r\nbb\r\nNS O2\r\nMN\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            row("mg", Some("a"), 1, Some(0), 0, Some(1)),
            row("mg", Some("b"), 1, Some(1), 2, Some(1)),
            row("ms", Some("c"), 1, None, 1, Some(1)),
            row("ms", Some("d"), 1, None, 1, Some(1)),
            row("md", Some("e"), 1, None, 0, Some(1)),
            row("mn", None, 0, None, 0, Some(1)),
        ]
    );
}

#[test]
fn watch_and_the_binary_protocol_are_not_parsed() {
    let (records, unparsed) = parse(&[
        whole(1, C, b"watch fetchers\r\n"),
        whole(2, S, b"OK\r\nts=1.2 gid=3 type=item_get key=k\r\n"),
        whole(3, C, b"get k\r\n"),
    ]);
    assert_eq!(summary(&records), [row("watch", None, 0, None, 0, Some(1))]);
    let logs = "ts=1.2 gid=3 type=item_get key=k\r\n";
    assert_eq!(unparsed.bytes, (logs.len() + "get k\r\n".len()) as u64);
    let mut get = vec![0x80, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 1];
    get.extend([0; 12]);
    get.push(b'k');
    let (records, unparsed) = parse(&[whole(1, C, &get)]);
    assert!(records.is_empty());
    assert_eq!(
        unparsed,
        Unparsed {
            messages: 1,
            bytes: 25
        }
    );
}

#[test]
fn requests_without_replies_are_kept_at_close() {
    let (records, _) = parse(&[
        whole(1, C, b"get a\r\nstats\r\nset k 0 0 5\r\nab"),
        whole(2, S, b"VALUE a 0 1\r\n"),
    ]);
    let mut get = row("get", Some("a"), 1, None, 1, None);
    get.7 = false;
    let mut set = row("set", Some("k"), 1, None, 5, None);
    set.7 = false;
    assert_eq!(
        summary(&records),
        [get, row("stats", None, 0, None, 0, None), set]
    );
}

#[test]
fn replies_never_wait_without_bound() {
    let requests = b"get k\r\n".repeat(1030);
    let (records, unparsed) = parse(&[whole(1, C, &requests)]);
    assert_eq!(records.len(), 1030);
    assert_eq!(unparsed.messages, 6);
    let quiet = b"ms k 1 q\r\nx\r\n".repeat(1030);
    let (records, unparsed) = parse(&[whole(1, C, &quiet)]);
    assert_eq!(records.len(), 1030);
    assert_eq!(unparsed, Unparsed::default());
}
