use super::*;

/// Feeds (time, side, captured bytes, true length) and closes at the end.
fn parse(segments: &[(i64, Side, &[u8], usize)]) -> (Vec<HttpRecord>, Unparsed) {
    let mut parser = HttpParser::new();
    let mut out = Vec::new();
    for &(time_ns, from, bytes, len) in segments {
        let segment = Segment {
            time_ns,
            tid: time_ns as u32,
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

fn whole(time_ns: i64, from: Side, bytes: &[u8]) -> (i64, Side, &[u8], usize) {
    (time_ns, from, bytes, bytes.len())
}

/// method, path, status, request bytes, response bytes, latency.
type Summary<'a> = (&'a str, &'a str, Option<u16>, u64, u64, Option<u64>);

fn summary(records: &[HttpRecord]) -> Vec<Summary<'_>> {
    records
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.path.as_str(),
                r.status,
                r.request_bytes,
                r.response_bytes,
                r.latency_ns,
            )
        })
        .collect()
}

use Side::{Client as C, Server as S};

#[test]
fn pipelined_requests_with_bodies_pair_in_order() {
    let requests = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: h\r\n\r\nPUT /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n";
    let (records, unparsed) = parse(&[
        whole(10, C, requests),
        whole(20, S, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        whole(30, S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            ("POST", "/a", Some(201), 3, 2, Some(10)),
            ("GET", "/b", Some(200), 0, 0, Some(10)),
            ("PUT", "/c", Some(200), 2, 4, Some(20)),
        ]
    );
    assert_eq!(records[1].host.as_deref(), Some("h"));
    assert_eq!(unparsed, Unparsed::default());
}

#[test]
fn head_and_bodyless_statuses_have_no_body_whatever_their_length_says() {
    let (records, _) = parse(&[
        whole(
            1,
            C,
            b"HEAD /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\nGET /z HTTP/1.1\r\n\r\n",
        ),
        whole(2, S, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"),
        whole(
            3,
            S,
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 999\r\n\r\n",
        ),
        whole(4, S, b"HTTP/1.1 204 No Content\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            ("HEAD", "/x", Some(200), 0, 0, Some(1)),
            ("GET", "/y", Some(304), 0, 0, Some(2)),
            ("GET", "/z", Some(204), 0, 0, Some(3)),
        ]
    );
}

#[test]
fn interim_responses_do_not_end_the_exchange() {
    let (records, _) = parse(&[
        whole(1, C, b"POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
        whole(2, S, b"HTTP/1.1 100 Continue\r\n\r\n"),
        whole(3, C, b"data"),
        whole(4, S, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"),
        whole(5, S, b"k"),
    ]);
    assert_eq!(
        summary(&records),
        [("POST", "/u", Some(200), 4, 1, Some(4))]
    );
}

#[test]
fn a_response_without_length_runs_until_close() {
    let (records, _) = parse(&[
        whole(1, C, b"GET /old HTTP/1.0\r\n\r\n"),
        whole(2, S, b"HTTP/1.0 200 OK\r\n\r\nsome"),
        (3, S, b"more", 10),
    ]);
    // Latency to the last byte seen, not to the close.
    assert_eq!(
        summary(&records),
        [("GET", "/old", Some(200), 0, 14, Some(2))]
    );
}

#[test]
fn bodies_cut_by_the_capture_are_skipped_by_length_and_by_chunk_size() {
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
    let chunked_head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (records, unparsed) = parse(&[
        whole(
            1,
            C,
            b"GET /big HTTP/1.1\r\n\r\nGET /chunks HTTP/1.1\r\n\r\n",
        ),
        (2, S, head, head.len() + 60_000),
        (3, S, b"", 40_000),
        whole(4, S, chunked_head),
        // One chunk per write, its CRLF included, captured only up to the data.
        (5, S, b"1000\r\nxxxx", 6 + 0x1000 + 2),
        (6, S, b"10\r\nyyyy", 4 + 0x10 + 2),
        whole(7, S, b"0\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            ("GET", "/big", Some(200), 0, 100_000, Some(2)),
            ("GET", "/chunks", Some(200), 0, 0x1010, Some(6))
        ]
    );
    assert_eq!(unparsed, Unparsed::default());
}

#[test]
fn a_lost_head_costs_its_exchange_and_the_next_ones_pair_again() {
    let (records, unparsed) = parse(&[
        whole(1, C, b"GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\n"),
        // The first response's head was cut by the capture after 10 bytes.
        (2, S, b"HTTP/1.1 2", 60),
        whole(3, S, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        // Garbage in the request stream, then a request found by its request line.
        whole(4, C, b"\x00\x01garbage\r\nDELETE /three HTTP/1.1\r\n\r\n"),
        whole(5, S, b"HTTP/1.1 204 No Content\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [
            ("GET", "/one", None, 0, 0, None),
            ("GET", "/two", Some(404), 0, 0, Some(2)),
            ("DELETE", "/three", Some(204), 0, 0, Some(1)),
        ]
    );
    assert_eq!(unparsed.bytes, 60 + 11);
}

#[test]
fn switching_protocols_stops_parsing() {
    let (records, unparsed) = parse(&[
        whole(
            1,
            C,
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ),
        whole(
            2,
            S,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
        ),
        whole(3, C, b"\x81\x85maskd"),
    ]);
    assert_eq!(
        summary(&records),
        [("GET", "/ws", Some(101), 0, 0, Some(1))]
    );
    assert_eq!(unparsed, Unparsed::default());
}

#[test]
fn requests_without_responses_are_kept_at_close() {
    let (records, _) = parse(&[
        whole(1, C, b"GET /slow HTTP/1.1\r\n\r\nGET /cut HTTP/1.1\r\n\r\n"),
        (
            2,
            S,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            45,
        ),
    ]);
    // /slow answered by a body that never ended: status known, latency not.
    assert_eq!(
        summary(&records),
        [
            ("GET", "/slow", Some(200), 0, 6, None),
            ("GET", "/cut", None, 0, 0, None)
        ]
    );
}

#[test]
fn a_request_line_split_across_writes_is_found_after_lost_bytes() {
    let (records, unparsed) = parse(&[
        // A head cut by the capture: that request is lost.
        (1, C, b"GET /a HTT", 100),
        whole(2, C, b"junk\r\nPOST /b/long/"),
        whole(3, C, b"path HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        whole(4, S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(
        summary(&records),
        [("POST", "/b/long/path", Some(200), 0, 0, Some(2))]
    );
    assert_eq!(unparsed.bytes, 100 + 6);
}

#[test]
fn a_head_arriving_a_byte_at_a_time() {
    let request = b"GET /slow/client HTTP/1.1\r\nHost: example\r\n\r\n";
    let mut segments: Vec<_> = request.chunks(1).map(|b| (1, C, b, 1)).collect();
    segments.push(whole(2, S, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    let (records, unparsed) = parse(&segments);
    assert_eq!(
        summary(&records),
        [("GET", "/slow/client", Some(200), 0, 0, Some(1))]
    );
    assert_eq!(records[0].host.as_deref(), Some("example"));
    assert_eq!(unparsed, Unparsed::default());
}
