use super::*;

fn envelope(inner: &str) -> Vec<u8> {
    let escaped = inner.replace('\\', "\\\\").replace('"', "\\\"");
    format!(r#"{{"oslo.version": "2.0", "oslo.message": "{escaped}"}}"#).into_bytes()
}

fn message(time_ns: i64, from: Side, exchange: &str, key: &str, body: Vec<u8>) -> AmqpMessage {
    AmqpMessage {
        time_ns,
        tid: 1,
        from,
        method: if from == Side::Client {
            "basic.publish"
        } else {
            "basic.deliver"
        },
        exchange: exchange.into(),
        routing_key: key.into(),
        correlation_id: None,
        reply_to: None,
        content_type: Some("application/json".into()),
        headers: Vec::new(),
        body_size: body.len() as u64,
        body,
        python_stack_id: None,
    }
}

const CLIENT: MessageOrigin = MessageOrigin {
    pid: 7,
    conn_id: 1,
    traced_side: Side::Client,
};

fn call(time_ns: i64, msg_id: &str) -> AmqpMessage {
    let inner = format!(
        r#"{{"method": "get", "args": {{"id": 1}}, "version": "2.0", "_msg_id": "{msg_id}", "_reply_q": "reply_q1", "_timeout": null, "_unique_id": "u"}}"#
    );
    message(time_ns, Side::Client, "nova", "conductor", envelope(&inner))
}

fn reply(time_ns: i64, msg_id: &str, ending: bool, result: &str) -> AmqpMessage {
    let inner = format!(
        r#"{{"result": {result}, "failure": null, "ending": {ending}, "_msg_id": "{msg_id}", "_unique_id": "r"}}"#
    );
    message(time_ns, Side::Server, "", "reply_q1", envelope(&inner))
}

#[test]
fn heartbeats_do_not_end_a_call_and_an_old_style_ending_does() {
    let mut pairing = RpcPairing::new(60_000_000_000);
    let mut out = Vec::new();
    pairing.push(CLIENT, &call(100, "m1"), &mut out);
    assert!(out.is_empty(), "a call waits for its reply");
    // A call-monitor heartbeat, then the result sent ahead of a separate ending message.
    pairing.push(CLIENT, &reply(200, "m1", false, "null"), &mut out);
    pairing.push(CLIENT, &reply(300, "m1", false, "42"), &mut out);
    assert_eq!(out.len(), 2);
    pairing.push(CLIENT, &reply(400, "m1", true, "null"), &mut out);
    let call = out
        .iter()
        .find(|r| r.kind == RpcKind::Call)
        .expect("the call");
    assert_eq!(call.latency_ns, Some(300));
    assert_eq!(
        (
            call.method.as_deref(),
            call.namespace.as_deref(),
            call.version.as_deref()
        ),
        (Some("get"), None, Some("2.0"))
    );
    assert_eq!(
        (call.direction, call.reply_q.as_deref()),
        (Direction::Sent, Some("reply_q1"))
    );
    assert_eq!(out.iter().filter(|r| r.kind == RpcKind::Reply).count(), 3);
}

#[test]
fn calls_without_replies_are_let_go_after_the_timeout_and_at_the_end() {
    let mut pairing = RpcPairing::new(1_000);
    let mut out = Vec::new();
    pairing.push(CLIENT, &call(0, "lost"), &mut out);
    pairing.push(CLIENT, &call(500, "late"), &mut out);
    pairing.push(CLIENT, &call(1_200, "pending"), &mut out);
    assert_eq!(
        out.iter().map(|r| r.msg_id.as_deref()).collect::<Vec<_>>(),
        [Some("lost")]
    );
    assert_eq!(out[0].latency_ns, None);
    pairing.finish(&mut out);
    assert_eq!(out.len(), 3);
}

#[test]
fn one_process_serving_its_own_call_pairs_each_direction_separately() {
    let mut pairing = RpcPairing::new(60_000_000_000);
    let mut out = Vec::new();
    let server_conn = MessageOrigin {
        conn_id: 2,
        ..CLIENT
    };
    pairing.push(CLIENT, &call(10, "m"), &mut out);
    // The same call delivered to the same process (its server side), answered, delivered back.
    let mut delivered = call(20, "m");
    delivered.from = Side::Server;
    pairing.push(server_conn, &delivered, &mut out);
    let mut answer = reply(50, "m", true, "1");
    answer.from = Side::Client;
    pairing.push(server_conn, &answer, &mut out);
    pairing.push(CLIENT, &reply(70, "m", true, "1"), &mut out);
    let latencies: Vec<_> = out
        .iter()
        .filter(|r| r.kind == RpcKind::Call)
        .map(|r| (r.direction, r.latency_ns))
        .collect();
    assert_eq!(
        latencies,
        [(Direction::Received, Some(30)), (Direction::Sent, Some(60))]
    );
}

#[test]
fn kinds_from_bodies_whole_and_cut() {
    let cast = envelope(
        r#"{"method": "ping", "args": {}, "namespace": "ns", "version": "1.0", "_unique_id": "u"}"#,
    );
    assert_eq!(decode_body(&cast).kind, Some(RpcKind::Cast));
    // Cut inside `args`: a call or a cast, nobody can tell.
    let cut = &envelope(r#"{"method": "build", "args": {"instance": "#)[..];
    let decoded = decode_body(cut);
    assert_eq!(
        (decoded.kind, decoded.method.as_deref()),
        (None, Some("build"))
    );
    // Cut after `_unique_id` without `_msg_id` before it: a cast.
    let cast_cut = envelope(
        r#"{"method": "ping", "args": {}, "version": "1.0", "_unique_id": "u", "_context_user": "ab"#,
    );
    assert_eq!(decode_body(&cast_cut).kind, Some(RpcKind::Cast));
    // A v1 notification has no envelope.
    let v1 = br#"{"message_id": "x", "publisher_id": "compute.h", "event_type": "compute.instance.update", "priority": "INFO"}"#;
    let decoded = decode_body(v1);
    assert_eq!(
        (decoded.kind, decoded.method.as_deref()),
        (Some(RpcKind::Notification), Some("compute.instance.update"))
    );
    assert_eq!(decode_body(b"\x00\x01binary").kind, Some(RpcKind::Other));
    let failure = envelope(
        r#"{"result": null, "failure": "{\"class\": \"InstanceNotFound\", \"module\": \"nova.exception\", \"message\": \"Instance 1 could not be found.\", \"tb\": []}", "ending": true, "_msg_id": "m"}"#,
    );
    let decoded = decode_body(&failure);
    assert_eq!(
        decoded.failure.as_deref(),
        Some("nova.exception.InstanceNotFound: Instance 1 could not be found.")
    );
}
