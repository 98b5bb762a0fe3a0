//! Fixed-count property tests over the recorded conversations: however the bytes are cut
//! into syscalls the records are the same, and damaged or truncated input never panics,
//! never hangs, and only costs the records it touches.

mod conversations;

use std::sync::mpsc;
use std::time::Duration;

use conversations::{Capture, Rng, by_connection, chop, frame_reads, limit, load, mutate, run};
use wire::amqp::AmqpParser;
use wire::http::HttpParser;
use wire::oslo::{MessageOrigin, RpcPairing};
use wire::stream::{ConnectionParser, Side};

const ROUNDS: u64 = 300;

fn http(captures: &[Capture]) -> Vec<wire::records::HttpRecord> {
    by_connection(captures)
        .values()
        .flat_map(|conn| run(HttpParser::new(), conn).0)
        .collect()
}

fn amqp(captures: &[Capture]) -> Vec<wire::records::AmqpMessage> {
    by_connection(captures)
        .values()
        .flat_map(|conn| run(AmqpParser::new(), conn).0)
        .collect()
}

fn rpc(captures: &[Capture]) -> usize {
    let mut pairing = RpcPairing::new(1_000_000_000);
    let mut out = Vec::new();
    for (conn, captures) in by_connection(captures) {
        for message in run(AmqpParser::new(), &captures).0 {
            let origin = MessageOrigin {
                pid: captures[0].process,
                conn_id: conn,
                traced_side: Side::Client,
            };
            pairing.push(origin, &message, &mut out);
        }
    }
    pairing.finish(&mut out);
    out.len()
}

#[test]
fn records_do_not_depend_on_how_the_stream_was_cut() {
    let (http_seg, oslo_seg) = (load("http.seg"), load("oslo.seg"));
    let (http_whole, amqp_whole) = (http(&http_seg), amqp(&oslo_seg));
    let mut rng = Rng(0x5ca1_9e15);
    for round in 0..ROUNDS {
        assert_eq!(
            http(&chop(&http_seg, &mut rng)),
            http_whole,
            "round {round}"
        );
        assert_eq!(
            amqp(&chop(&oslo_seg, &mut rng)),
            amqp_whole,
            "round {round}"
        );
        assert_eq!(
            amqp(&chop(&frame_reads(&oslo_seg), &mut rng)),
            amqp_whole,
            "round {round}"
        );
    }
}

/// py-amqp (under kombu, under oslo.messaging) reads a frame's 7-byte header, its payload
/// and its end byte in three recv()s, the first frame of a connection included: nothing
/// may be lost, not even the handshake.
#[test]
fn frames_read_piece_by_piece_give_the_same_messages_and_nothing_unparsed() {
    for fixture in ["oslo.seg", "amqp_py_amqp_reads.seg"] {
        let captures = load(fixture);
        let pieces = frame_reads(&captures);
        assert!(pieces.len() > captures.len(), "{fixture}");
        assert_eq!(amqp(&pieces), amqp(&captures), "{fixture}");
        for (conn, captures) in by_connection(&pieces) {
            let (_, unparsed) = run(AmqpParser::new(), &captures);
            assert_eq!(unparsed, Default::default(), "{fixture} connection {conn}");
        }
    }
}

#[test]
fn any_capture_prefix_keeps_the_framing_of_later_messages() {
    let (http_seg, oslo_seg) = (load("http.seg"), load("oslo.seg"));
    let (http_whole, amqp_whole) = (http(&http_seg), amqp(&oslo_seg));
    for prefix in [0, 1, 7, 8, 30, 64, 100, 200, 300, 1000, 4096] {
        let http_cut = http(&limit(&http_seg, prefix));
        let amqp_cut = amqp(&limit(&oslo_seg, prefix));
        // Nothing invented: at most one record per request, and the messages that come
        // through keep their routing.
        assert!(http_cut.len() <= http_whole.len(), "prefix {prefix}");
        assert!(amqp_cut.len() <= amqp_whole.len(), "prefix {prefix}");
        for m in &amqp_cut {
            assert!(
                amqp_whole.iter().any(|w| (
                    w.method,
                    &w.exchange,
                    &w.routing_key,
                    w.body_size,
                    w.time_ns
                ) == (
                    m.method,
                    &m.exchange,
                    &m.routing_key,
                    m.body_size,
                    m.time_ns
                )),
                "prefix {prefix}: {m:?}"
            );
            assert!(m.body.len() as u64 <= m.body_size);
        }
    }
}

/// Runs `work` on its own thread and fails if it has not finished within `limit`: a parser
/// stuck in a loop must fail the test, not hang it.
fn within(limit: Duration, work: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        work();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => worker.join().expect("worker"),
        // The worker panicked: join to pass its panic on.
        Err(mpsc::RecvTimeoutError::Disconnected) => worker.join().expect("worker panicked"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("still running after {limit:?}"),
    }
}

#[test]
fn damaged_streams_never_panic_or_stall() {
    within(Duration::from_secs(120), || {
        let fixtures = [load("http.seg"), load("oslo.seg")];
        let mut rng = Rng(0xdead_beef);
        for round in 0..ROUNDS {
            for fixture in &fixtures {
                let damaged = chop(&mutate(fixture, &mut rng), &mut rng);
                // Every parser on every input: a connection can be guessed wrong.
                let _ = http(&damaged);
                for message in amqp(&damaged) {
                    assert!(
                        message.body.len() as u64 <= message.body_size,
                        "round {round}"
                    );
                }
                let _ = rpc(&damaged);
                for conn in by_connection(&damaged).values() {
                    let mut parser = HttpParser::new();
                    let mut out = Vec::new();
                    for capture in conn {
                        parser.feed(&capture.segment(), &mut out);
                    }
                    let unparsed = parser.unparsed();
                    let total: u64 = conn.iter().map(|c| c.len).sum();
                    assert!(unparsed.bytes <= total, "round {round}");
                }
            }
        }
    });
}
