//! The HTTP parser on a real Python client/server conversation.

mod conversations;

use conversations::{http_records, limit, load};

#[test]
fn every_exchange_is_paired_with_its_status_and_sizes() {
    let records = http_records(&load("http.seg"));
    let got: Vec<_> = records
        .iter()
        .map(|(conn, r)| {
            (
                *conn,
                r.method.as_str(),
                r.path.as_str(),
                r.status,
                r.request_bytes,
                r.response_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "GET", "/items?id=1", Some(200), 0, 5),
            (1, "HEAD", "/items", Some(200), 0, 0),
            (1, "POST", "/items", Some(201), 15, 11),
            (1, "PUT", "/upload", Some(200), 8, 8),
            (1, "GET", "/chunked", Some(200), 0, 30),
            (1, "GET", "/missing", Some(404), 0, 340),
            (2, "DELETE", "/items/1", Some(204), 0, 0),
            (2, "GET", "/cached", Some(304), 0, 0),
            (2, "GET", "/big", Some(200), 0, 40_000),
            (3, "GET", "/a", Some(200), 0, 2),
            (3, "GET", "/b", Some(200), 0, 2),
            (4, "POST", "/items", Some(201), 4, 10),
            (5, "GET", "/close", Some(200), 0, 120),
        ]
    );
    assert!(
        records
            .iter()
            .all(|(_, r)| r.latency_ns.is_some_and(|l| l > 0))
    );
    assert_eq!(records[0].1.host.as_deref(), Some("127.0.0.1:35711"));
}

#[test]
fn latency_runs_from_the_request_first_byte_to_the_response_last_byte() {
    let captures = load("http.seg");
    let records = http_records(&captures);
    // POST /items: the request head and body came in two reads, the response head and
    // body in two writes.
    assert!(captures[4].bytes.starts_with(b"POST /items "));
    assert_eq!(captures[7].bytes, b"{\"got\": 15}");
    assert_eq!(records[2].1.time_ns, captures[4].time_ns);
    assert_eq!(
        records[2].1.latency_ns,
        Some((captures[7].time_ns - captures[4].time_ns) as u64)
    );
    // The pipelined pair: both requests in one write, each answered by its own response.
    let pipelined: Vec<_> = captures.iter().filter(|c| c.conn == 3).collect();
    let (a, b) = (&records[9].1, &records[10].1);
    assert_eq!(a.time_ns, pipelined[0].time_ns);
    assert_eq!(b.time_ns, pipelined[0].time_ns);
    assert_eq!(
        a.latency_ns,
        Some((pipelined[2].time_ns - pipelined[0].time_ns) as u64)
    );
    assert_eq!(
        b.latency_ns,
        Some((pipelined[4].time_ns - pipelined[0].time_ns) as u64)
    );
}

#[test]
fn bodies_beyond_the_capture_prefix_are_skipped_by_length() {
    let captures = load("http.seg");
    let whole = http_records(&captures);
    // 256 bytes per syscall keeps every head but cuts the large body and the read-until-close one.
    let cut = http_records(&limit(&captures, 256));
    assert_eq!(cut, whole);
}
