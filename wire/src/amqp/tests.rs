use super::*;

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(0xCE);
    f
}

fn short(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn publish(channel: u16, exchange: &str, key: &str) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 40, 0, 0];
    p.extend(short(exchange));
    p.extend(short(key));
    p.push(0);
    frame(1, channel, &p)
}

fn deliver(channel: u16, exchange: &str, key: &str) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 60];
    p.extend(short("ctag"));
    p.extend(7u64.to_be_bytes());
    p.push(0);
    p.extend(short(exchange));
    p.extend(short(key));
    frame(1, channel, &p)
}

/// A content header with content-type, a headers table, correlation-id and reply-to.
fn header(channel: u16, body_size: u64) -> Vec<u8> {
    let mut p = vec![0, 60, 0, 0];
    p.extend(body_size.to_be_bytes());
    let flags: u16 = 1 << 15 | 1 << 13 | 1 << 10 | 1 << 9;
    p.extend(flags.to_be_bytes());
    p.extend(short("application/json"));
    let mut table = short("x-retry");
    table.push(b'I');
    table.extend(3i32.to_be_bytes());
    table.extend(short("origin"));
    table.push(b'S');
    table.extend(4u32.to_be_bytes());
    table.extend(b"nova");
    p.extend((table.len() as u32).to_be_bytes());
    p.extend(table);
    p.extend(short("corr-1"));
    p.extend(short("amq.rabbitmq.reply-to"));
    frame(2, channel, &p)
}

fn body(channel: u16, bytes: &[u8]) -> Vec<u8> {
    frame(3, channel, bytes)
}

fn segment(time_ns: i64, from: Side, bytes: &[u8], len: usize) -> Segment<'_> {
    Segment {
        time_ns,
        tid: 9,
        from,
        bytes,
        len: len as u64,
        python_stack_id: Some(5),
    }
}

fn feed_all(parser: &mut AmqpParser, segments: &[(i64, Side, Vec<u8>, usize)]) -> Vec<AmqpMessage> {
    let mut out = Vec::new();
    for (time, side, bytes, len) in segments {
        parser.feed(&segment(*time, *side, bytes, *len), &mut out);
    }
    out
}

#[test]
fn a_publish_in_one_write_with_its_properties() {
    let mut bytes = b"AMQP\x00\x00\x09\x01".to_vec();
    bytes.extend(publish(1, "nova", "compute.host1"));
    bytes.extend(header(1, 5));
    bytes.extend(body(1, b"hello"));
    let len = bytes.len();
    let mut parser = AmqpParser::new();
    let out = feed_all(&mut parser, &[(10, Side::Client, bytes, len)]);
    assert_eq!(out.len(), 1);
    let m = &out[0];
    assert_eq!(
        (m.method, m.exchange.as_str(), m.routing_key.as_str()),
        ("basic.publish", "nova", "compute.host1")
    );
    assert_eq!(
        (m.from, m.time_ns, m.tid, m.python_stack_id),
        (Side::Client, 10, 9, Some(5))
    );
    assert_eq!(m.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(m.reply_to.as_deref(), Some("amq.rabbitmq.reply-to"));
    assert_eq!(
        m.headers,
        [
            ("x-retry".to_owned(), "3".to_owned()),
            ("origin".to_owned(), "nova".to_owned())
        ]
    );
    assert_eq!((m.body.as_slice(), m.body_size), (&b"hello"[..], 5));
    assert_eq!(parser.unparsed(), Unparsed::default());
}

#[test]
fn interleaved_channels_and_a_body_in_several_frames() {
    let mut first = deliver(1, "", "reply_a");
    first.extend(deliver(2, "ex", "topic"));
    first.extend(header(2, 3));
    first.extend(header(1, 6));
    first.extend(body(1, b"abc"));
    let mut second = body(2, b"xyz");
    second.extend(body(1, b"def"));
    let (l1, l2) = (first.len(), second.len());
    let mut parser = AmqpParser::new();
    let out = feed_all(
        &mut parser,
        &[(1, Side::Server, first, l1), (2, Side::Server, second, l2)],
    );
    let got: Vec<_> = out
        .iter()
        .map(|m| (m.routing_key.as_str(), m.body.as_slice(), m.time_ns))
        .collect();
    assert_eq!(
        got,
        [("topic", &b"xyz"[..], 2), ("reply_a", &b"abcdef"[..], 2)]
    );
    assert!(
        out.iter()
            .all(|m| m.method == "basic.deliver" && m.from == Side::Server)
    );
}

#[test]
fn a_body_beyond_the_capture_is_skipped_by_frame_size() {
    let big = vec![b'x'; 10_000];
    let mut bytes = publish(1, "ex", "k");
    bytes.extend(header(1, big.len() as u64));
    bytes.extend(body(1, &big));
    let len = bytes.len();
    bytes.truncate(300);
    // The next publish starts in the next write, right after the uncaptured tail.
    let mut next = publish(1, "ex", "k2");
    next.extend(header(1, 2));
    next.extend(body(1, b"ok"));
    let next_len = next.len();
    let mut parser = AmqpParser::new();
    let out = feed_all(
        &mut parser,
        &[
            (1, Side::Client, bytes, len),
            (2, Side::Client, next, next_len),
        ],
    );
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].body_size, out[0].time_ns), (10_000, 1));
    assert!(out[0].body.len() < 300 && out[0].body.iter().all(|&b| b == b'x'));
    assert_eq!(
        (out[1].routing_key.as_str(), out[1].body.as_slice()),
        ("k2", &b"ok"[..])
    );
    assert_eq!(parser.unparsed(), Unparsed::default());
}

#[test]
fn a_frame_cut_across_writes_completes_where_it_ends() {
    let big = vec![b'y'; 5000];
    let mut whole = publish(1, "ex", "k");
    whole.extend(header(1, big.len() as u64));
    whole.extend(body(1, &big));
    // The kernel moved the message in two sends of 3000 and the rest; 200 bytes of each
    // were captured (the body frame's header is in the first 200).
    let (a, b) = whole.split_at(3000);
    let mut parser = AmqpParser::new();
    let out = feed_all(
        &mut parser,
        &[
            (1, Side::Client, a[..200].to_vec(), a.len()),
            (2, Side::Client, b[..200].to_vec(), b.len()),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].time_ns, out[0].body_size), (2, 5000));
    assert_eq!(parser.unparsed(), Unparsed::default());
}

/// py-amqp's reads: a frame's 7-byte header, then its payload, then its end byte. The
/// stream's first frame cannot be checked on its header alone; it waits for the payload
/// instead of being taken for noise.
#[test]
fn a_first_frame_read_header_payload_and_end_byte_apart_is_not_lost() {
    let mut stream = deliver(1, "", "reply_q");
    stream.extend(header(1, 2));
    stream.extend(body(1, b"ok"));
    let mut reads = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let size = u32::from_be_bytes(rest[3..7].try_into().unwrap()) as usize;
        let (frame, tail) = rest.split_at(8 + size);
        for piece in [&frame[..7], &frame[7..7 + size], &frame[7 + size..]] {
            if !piece.is_empty() {
                let time = reads.len() as i64;
                reads.push((time, Side::Server, piece.to_vec(), piece.len()));
            }
        }
        rest = tail;
    }
    let mut parser = AmqpParser::new();
    let out = feed_all(&mut parser, &reads);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].routing_key.as_str(), &out[0].body[..]),
        ("reply_q", &b"ok"[..])
    );
    assert_eq!(parser.unparsed(), Unparsed::default());
}

#[test]
fn after_losing_a_frame_boundary_it_resynchronises_on_a_verified_frame() {
    let mut lost = publish(1, "ex", "first");
    lost.extend(header(1, 4));
    lost.extend(body(1, b"abcd"));
    lost.extend(publish(1, "ex", "second"));
    let lost_len = lost.len();
    // Only 3 bytes captured: no frame header, so the hole crosses boundaries blindly.
    lost.truncate(3);
    let mut later = vec![0x42, 0x17, 0xCE];
    later.extend(publish(3, "ex", "third"));
    later.extend(header(3, 2));
    later.extend(body(3, b"ok"));
    let later_len = later.len();
    let mut parser = AmqpParser::new();
    let out = feed_all(
        &mut parser,
        &[
            (1, Side::Client, lost, lost_len),
            (2, Side::Client, later, later_len),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].routing_key, "third");
    let unparsed = parser.unparsed();
    assert_eq!(unparsed.bytes, lost_len as u64 + 3);
}

#[test]
fn headers_without_a_method_and_bad_frame_ends_are_counted() {
    let mut bytes = header(1, 3);
    bytes.extend(body(1, b"abc"));
    let mut bad = publish(2, "ex", "k");
    *bad.last_mut().unwrap() = 0x00;
    bytes.extend(bad);
    bytes.extend(publish(3, "ex", "k"));
    let len = bytes.len();
    let mut parser = AmqpParser::new();
    let out = feed_all(&mut parser, &[(1, Side::Client, bytes, len)]);
    assert!(out.is_empty());
    parser.close(5, &mut Vec::new());
    // The orphan header, the frame without its 0xCE, and the publish cut by the close.
    assert_eq!(parser.unparsed().messages, 3);
}

#[test]
fn get_ok_and_return_carry_their_routing() {
    let mut get_ok = vec![0, 60, 0, 71];
    get_ok.extend(1u64.to_be_bytes());
    get_ok.push(0);
    get_ok.extend(short("ex"));
    get_ok.extend(short("q1"));
    get_ok.extend(0u32.to_be_bytes());
    let mut returned = vec![0, 60, 0, 50, 1, 56];
    returned.extend(short("NO_ROUTE"));
    returned.extend(short(""));
    returned.extend(short("reply_gone"));
    let mut bytes = frame(1, 1, &get_ok);
    bytes.extend(header(1, 0));
    bytes.extend(frame(1, 2, &returned));
    bytes.extend(header(2, 1));
    bytes.extend(body(2, b"z"));
    let len = bytes.len();
    let out = feed_all(&mut AmqpParser::new(), &[(1, Side::Server, bytes, len)]);
    let got: Vec<_> = out
        .iter()
        .map(|m| {
            (
                m.method,
                m.exchange.as_str(),
                m.routing_key.as_str(),
                m.body_size,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("basic.get-ok", "ex", "q1", 0),
            ("basic.return", "", "reply_gone", 1)
        ]
    );
}
