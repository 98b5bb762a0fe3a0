use super::*;
use crate::cache_exchange::testing::{Summary, feed, row, summary, whole};

/// Feeds (time, side, captured bytes, true length) and closes at the end.
fn parse(segments: &[(i64, Side, &[u8], usize)]) -> (Vec<CacheRecord>, Unparsed) {
    feed(RedisParser::new(), segments)
}

/// A request as clients send it: an array of bulk strings.
fn request(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(format!("${}\r\n{arg}\r\n", arg.len()).bytes());
    }
    out
}

fn incomplete(mut row: Summary) -> Summary {
    row.7 = false;
    row
}

use Side::{Client as C, Server as S};

#[test]
fn pipelined_requests_pair_in_order_however_the_replies_are_cut() {
    let mut requests = request(&["SET", "k", "hello"]);
    requests.extend(request(&["MGET", "k", "nope", "k"]));
    requests.extend(request(&["HGET", "h", "f"]));
    requests.extend(b"EXISTS k nope\r\n");
    requests.extend(request(&["DEL", "a", "b"]));
    requests.extend(request(&["MSET", "x", "1", "y", "22"]));
    let replies: &[u8] =
        b"+OK\r\n*3\r\n$5\r\nhello\r\n$-1\r\n$5\r\nhello\r\n$-1\r\n:1\r\n:0\r\n+OK\r\n";
    let expected = [
        row("set", Some("k"), 1, None, 5, Some(10)),
        row("mget", Some("k"), 3, Some(2), 10, Some(10)),
        row("hget", Some("h"), 1, Some(0), 0, Some(10)),
        row("exists", Some("k"), 2, Some(1), 0, Some(10)),
        row("del", Some("a"), 2, None, 0, Some(10)),
        row("mset", Some("x"), 2, None, 3, Some(10)),
    ];
    for cut in 0..=replies.len() {
        let (records, unparsed) = parse(&[
            whole(10, C, &requests),
            whole(20, S, &replies[..cut]),
            whole(20, S, &replies[cut..]),
        ]);
        assert_eq!(summary(&records), expected, "cut at {cut}");
        assert_eq!(unparsed, Unparsed::default());
    }
}

#[test]
fn resp3_attributes_pushes_and_errors() {
    let mut requests = request(&["GET", "k"]);
    requests.extend(request(&["HGETALL", "h"]));
    requests.extend(request(&["GET", "x"]));
    requests.extend(request(&["SET", "k"]));
    let (records, unparsed) = parse(&[
        whole(1, C, &requests),
        // An invalidation push before the first reply; an attribute before the second.
        whole(
            2,
            S,
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n=8\r\ntxt:abcd\r\n",
        ),
        whole(
            3,
            S,
            b"|1\r\n+ttl\r\n:30\r\n%1\r\n$1\r\nf\r\n$2\r\nvv\r\n_\r\n",
        ),
        whole(4, S, b"!29\r\nERR wrong number of arguments\r\n"),
    ]);
    let mut error = row("set", Some("k"), 1, None, 0, Some(3));
    error.6 = Some("ERR wrong number of arguments".into());
    assert_eq!(
        summary(&records),
        [
            row("get", Some("k"), 1, Some(1), 8, Some(1)),
            row("hgetall", Some("h"), 1, None, 3, Some(2)),
            row("get", Some("x"), 1, Some(0), 0, Some(2)),
            error,
        ]
    );
    assert_eq!(unparsed, Unparsed::default());
}

#[test]
fn queued_commands_have_no_hits_of_their_own() {
    let mut requests = request(&["MULTI"]);
    requests.extend(request(&["GET", "k"]));
    requests.extend(request(&["EXEC"]));
    let (records, _) = parse(&[
        whole(1, C, &requests),
        whole(2, S, b"+OK\r\n+QUEUED\r\n*1\r\n$1\r\nv\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            row("multi", None, 0, None, 0, Some(1)),
            row("get", Some("k"), 1, None, 0, Some(1)),
            row("exec", None, 0, None, 0, Some(1)),
        ]
    );
}

#[test]
fn values_cut_by_the_capture_are_skipped_by_length() {
    let head = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$100000\r\n";
    let (records, unparsed) = parse(&[
        (1, C, &head[..], head.len() + 100_002),
        whole(2, S, b"+OK\r\n"),
        whole(3, C, &request(&["GET", "big"])),
        (4, S, b"$100000\r\nxyz", 9 + 100_000 + 2),
        whole(5, C, &request(&["GET", "k"])),
        whole(6, S, b"$-1\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            incomplete(row("set", Some("big"), 1, None, 100_000, Some(1))),
            incomplete(row("get", Some("big"), 1, Some(1), 100_000, Some(1))),
            row("get", Some("k"), 1, Some(0), 0, Some(1)),
        ]
    );
    assert_eq!(unparsed, Unparsed::default());
}

#[test]
fn lost_reply_framing_costs_the_requests_waiting_then_pairs_again() {
    let mut requests = request(&["MGET", "a", "b"]);
    requests.extend(request(&["GET", "c"]));
    let (records, unparsed) = parse(&[
        whole(1, C, &requests),
        // The hole holds the rest of the first value and more.
        (2, S, b"*2\r\n$4\r\nab", 10 + 30),
        whole(3, S, b"$1\r\nc\r\n"),
        whole(4, C, &request(&["GET", "d"])),
        whole(5, S, b"$1\r\nd\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            incomplete(row("mget", Some("a"), 2, None, 0, Some(2))),
            incomplete(row("get", Some("c"), 1, None, 0, Some(2))),
            row("get", Some("d"), 1, Some(1), 1, Some(1)),
        ]
    );
    assert_eq!(unparsed.messages, 1);
    assert_eq!(unparsed.bytes, 30 - 4 + 7);
}

#[test]
fn client_bytes_out_of_step_are_skipped_to_the_next_request() {
    let mut bytes = b"of a value\r\n".to_vec();
    bytes.extend(request(&["GET", "k"]));
    let (records, unparsed) = parse(&[
        // The trace began inside a bulk string, before the reply to its request.
        whole(1, C, &bytes),
        whole(2, S, b"+OK\r\n$-1\r\n"),
        // Not RESP where an argument's length should be.
        whole(3, C, b"*2\r\n$3\r\nDEL\r\nxx\r\n"),
        whole(4, S, b"-ERR Protocol error: expected '$', got 'x'\r\n"),
        whole(5, C, b"junk\r\nPING\r\n"),
        whole(6, S, b"+PONG\r\n"),
    ]);
    let mut refused = incomplete(row("del", None, 0, None, 0, Some(1)));
    refused.6 = Some("ERR Protocol error: expected '$', got 'x'".into());
    assert_eq!(
        summary(&records),
        [
            row("get", Some("k"), 1, Some(0), 0, Some(1)),
            refused,
            row("ping", None, 0, None, 0, Some(1)),
        ]
    );
    // The +OK to a request not seen, and the DEL's arguments out of step.
    assert_eq!(unparsed.messages, 2);
    assert_eq!(unparsed.bytes, 12 + 6);
}

#[test]
fn subscribe_and_monitor_stop_the_pairing() {
    let (records, unparsed) = parse(&[
        whole(1, C, &request(&["SUBSCRIBE", "ch"])),
        // Refused (in a MULTI, say): nothing changes.
        whole(2, S, b"-ERR Command not allowed inside a transaction\r\n"),
        whole(3, C, &request(&["MONITOR"])),
        whole(
            4,
            S,
            b"+OK\r\n+1700000000.000000 [0 127.0.0.1:5000] \"GET\" \"k\"\r\n",
        ),
        whole(5, C, &request(&["GET", "k"])),
    ]);
    let mut refused = row("subscribe", None, 0, None, 0, Some(1));
    refused.6 = Some("ERR Command not allowed inside a transaction".into());
    assert_eq!(
        summary(&records),
        [refused, row("monitor", None, 0, None, 0, Some(1))]
    );
    let pushed = "+1700000000.000000 [0 127.0.0.1:5000] \"GET\" \"k\"\r\n";
    let after = request(&["GET", "k"]);
    assert_eq!(unparsed.bytes, (pushed.len() + after.len()) as u64);
}

#[test]
fn requests_without_replies_are_kept_at_close() {
    let mut requests = request(&["GET", "a"]);
    requests.extend(request(&["PING"]));
    requests.extend(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab");
    let (records, _) = parse(&[whole(1, C, &requests), whole(2, S, b"*2\r\n$1\r\n")]);
    assert_eq!(
        summary(&records),
        [
            incomplete(row("get", Some("a"), 1, None, 0, None)),
            row("ping", None, 0, None, 0, None),
            incomplete(row("set", Some("k"), 1, None, 0, None)),
        ]
    );
}

#[test]
fn eval_names_its_keys_and_blocking_pops_end_with_a_timeout() {
    let mut requests = request(&["EVAL", "return 1", "2", "k1", "k2", "arg"]);
    requests.extend(request(&["BLPOP", "q1", "q2", "5"]));
    requests.extend(request(&["HSET", "h", "f1", "v1", "f2", "v22"]));
    let (records, _) = parse(&[whole(1, C, &requests), whole(2, S, b":1\r\n*-1\r\n:2\r\n")]);
    assert_eq!(
        summary(&records),
        [
            row("eval", Some("k1"), 2, None, 0, Some(1)),
            row("blpop", Some("q1"), 2, None, 0, Some(1)),
            row("hset", Some("h"), 1, None, 5, Some(1)),
        ]
    );
}
