//! The AMQP parser and the oslo.messaging layer on a real RabbitMQ conversation: an RPC
//! server (process 1) and a client (process 2) making calls (one failing, one slow enough
//! for call-monitor heartbeats), casts (one fanout) and a notification.

mod conversations;

use conversations::{Capture, amqp_messages, limit, load, rpc_records};
use wire::oslo::{Direction, RpcKind, RpcRecord};
use wire::stream::Unparsed;

fn summary(r: &RpcRecord) -> (u32, Direction, RpcKind, Option<&str>, &str, &str) {
    (
        r.pid,
        r.direction,
        r.kind,
        r.method.as_deref(),
        r.exchange.as_str(),
        r.routing_key.as_str(),
    )
}

#[test]
fn every_message_is_framed_and_nothing_is_left_over() {
    let (messages, unparsed) = amqp_messages(&load("oslo.seg"));
    assert_eq!(unparsed, Unparsed::default());
    let publishes = messages
        .iter()
        .filter(|(_, m)| m.method == "basic.publish")
        .count();
    let deliveries = messages
        .iter()
        .filter(|(_, m)| m.method == "basic.deliver")
        .count();
    // Client: 4 calls, 3 casts, 1 notification; server: 4 replies and 2 heartbeats. The
    // broker delivers the calls and casts to the server and the replies to the client (the
    // notification waits in its queue).
    assert_eq!((publishes, deliveries), (14, 13));
    for (_, m) in &messages {
        assert_eq!(m.body.len() as u64, m.body_size);
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
    }
}

#[test]
fn calls_casts_replies_and_the_notification() {
    let records = rpc_records(&load("oslo.seg"));
    let client_sent: Vec<_> = records
        .iter()
        .filter(|r| r.pid == 2 && r.direction == Direction::Sent)
        .map(summary)
        .collect();
    let (s, c) = (Direction::Sent, RpcKind::Call);
    assert_eq!(
        client_sent,
        [
            (2, s, c, Some("add"), "openstack", "demo"),
            (2, s, c, Some("add"), "openstack", "demo"),
            (2, s, c, Some("fail"), "openstack", "demo"),
            (2, s, c, Some("slow"), "openstack", "demo"),
            (2, s, RpcKind::Cast, Some("note"), "openstack", "demo"),
            (2, s, RpcKind::Cast, Some("note"), "openstack", "demo"),
            (2, s, RpcKind::Cast, Some("note"), "demo_fanout", ""),
            (
                2,
                s,
                RpcKind::Notification,
                Some("compute.instance.create.end"),
                "openstack",
                "notifications.info"
            ),
        ]
    );
    let count = |pid, direction, kind| {
        records
            .iter()
            .filter(|r| r.pid == pid && r.direction == direction && r.kind == kind)
            .count()
    };
    assert_eq!(count(1, Direction::Received, RpcKind::Call), 4);
    assert_eq!(count(1, Direction::Received, RpcKind::Cast), 3);
    assert_eq!(count(1, Direction::Sent, RpcKind::Reply), 6);
    assert_eq!(count(2, Direction::Received, RpcKind::Reply), 6);
    assert_eq!(records.len(), 8 + 7 + 6 + 6);
    for r in &records {
        assert_eq!(
            r.namespace.is_some(),
            matches!(r.kind, RpcKind::Call | RpcKind::Cast),
            "{r:?}"
        );
        if matches!(r.kind, RpcKind::Call | RpcKind::Cast) {
            assert_eq!(
                (r.namespace.as_deref(), r.version.as_deref()),
                (Some("demo_ns"), Some("1.2"))
            );
        }
        assert_eq!(
            r.msg_id.is_some(),
            matches!(r.kind, RpcKind::Call | RpcKind::Reply)
        );
    }
}

#[test]
fn each_call_gets_the_latency_of_its_reply_from_another_connection() {
    let records = rpc_records(&load("oslo.seg"));
    let calls: Vec<&RpcRecord> = records.iter().filter(|r| r.kind == RpcKind::Call).collect();
    assert_eq!(calls.len(), 8);
    for call in calls {
        let replies: Vec<&RpcRecord> = records
            .iter()
            .filter(|r| r.kind == RpcKind::Reply && r.pid == call.pid && r.msg_id == call.msg_id)
            .collect();
        // The slow call got two heartbeats (`ending: false`) before its result.
        let heartbeats = if call.method.as_deref() == Some("slow") {
            2
        } else {
            0
        };
        assert_eq!(replies.len(), heartbeats + 1);
        assert!(
            replies[..heartbeats]
                .iter()
                .all(|r| r.ending == Some(false))
        );
        let reply = replies[heartbeats];
        assert_eq!(reply.ending, Some(true));
        assert_eq!(call.latency_ns, Some((reply.time_ns - call.time_ns) as u64));
        let least = if heartbeats > 0 { 2_500_000_000 } else { 1 };
        assert!(call.latency_ns >= Some(least), "{call:?}");
        if call.direction == Direction::Sent {
            // The client publishes on one connection and consumes its reply queue on another.
            assert_ne!(call.conn_id, reply.conn_id);
            assert_eq!(call.reply_q, reply.reply_q);
            assert!(
                call.reply_q
                    .as_deref()
                    .is_some_and(|q| q.starts_with("reply_"))
            );
        }
        let failure = reply.failure.as_deref();
        if call.method.as_deref() == Some("fail") {
            assert_eq!(failure, Some("ValueError: no such flavor"));
        } else {
            assert_eq!(failure, None);
        }
    }
}

#[test]
fn a_short_capture_prefix_still_gives_kinds_methods_and_pairs() {
    let captures = load("oslo.seg");
    let whole = rpc_records(&captures);
    // 512 bytes per syscall: the envelopes are cut after `_msg_id`, and the reply carrying
    // the failure (1.5 kB, traceback first) before its `_msg_id`: it pairs by reply queue.
    let cut = rpc_records(&limit(&captures, 512));
    assert_eq!(cut.len(), whole.len());
    for (a, b) in whole.iter().zip(&cut) {
        assert_eq!(summary(a), summary(b));
        assert_eq!(
            (a.latency_ns, a.body_bytes, &a.failure),
            (b.latency_ns, b.body_bytes, &b.failure)
        );
        if b.kind == RpcKind::Reply && b.msg_id.is_none() {
            assert_eq!(b.failure.as_deref(), Some("ValueError: no such flavor"));
        } else {
            assert_eq!(a.msg_id, b.msg_id);
        }
    }
}

/// Consecutive captures of one side joined: each direction's bytes as one recv() would
/// have them if the reader asked for everything available.
fn joined(captures: &[Capture]) -> Vec<Capture> {
    let mut out: Vec<Capture> = Vec::new();
    for capture in captures {
        match out.last_mut() {
            Some(last) if last.from == capture.from => {
                last.bytes.extend_from_slice(&capture.bytes);
                last.len += capture.len;
                last.time_ns = capture.time_ns;
            }
            _ => out.push(capture.clone()),
        }
    }
    out
}

/// The client's reply-queue connection as the traced process's own recv()s moved it:
/// py-amqp reads each frame's 7-byte header, its payload and its end byte separately, from
/// the broker's first frame (Connection.Start) on.
#[test]
fn frames_read_header_payload_and_end_byte_apart_are_all_parsed() {
    let captures = load("amqp_py_amqp_reads.seg");
    assert!(captures.iter().any(|c| c.bytes.len() == 7));
    let (messages, unparsed) = amqp_messages(&captures);
    assert_eq!(unparsed, Unparsed::default());
    let replies: Vec<(&str, &str, &str, u64)> = messages
        .iter()
        .map(|(_, m)| {
            (
                m.method,
                m.exchange.as_str(),
                m.routing_key.as_str(),
                m.body_size,
            )
        })
        .collect();
    let queue = "reply_f78a36db69474336bf6e17e7cd082d2b";
    assert_eq!(replies, [("basic.deliver", "", queue, 200); 3]);
    for (_, m) in &messages {
        assert_eq!(m.body.len(), 200);
    }
    let records = rpc_records(&captures);
    let results: Vec<(RpcKind, Option<&str>, Option<bool>)> = records
        .iter()
        .map(|r| (r.kind, r.msg_id.as_deref(), r.ending))
        .collect();
    assert_eq!(
        results,
        [
            (
                RpcKind::Reply,
                Some("04efd6c13b474795bf43a6b0809df287"),
                Some(true)
            ),
            (
                RpcKind::Reply,
                Some("5b49b551744946c292e7f82ce5a0c191"),
                Some(true)
            ),
            (
                RpcKind::Reply,
                Some("d87ce89c135443a885c2f90af7889311"),
                Some(true)
            ),
        ]
    );
    // The same bytes in whole frames give the same messages, at the same times.
    let (whole, unparsed) = amqp_messages(&joined(&captures));
    assert_eq!(unparsed, Unparsed::default());
    let times = |messages: &[(wire::oslo::MessageOrigin, wire::records::AmqpMessage)]| {
        messages.iter().map(|(_, m)| m.time_ns).collect::<Vec<_>>()
    };
    assert_eq!(times(&whole), times(&messages));
}
