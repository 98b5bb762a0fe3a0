//! oslo.messaging RPC over a real RabbitMQ, traced for real: a client process calling and
//! casting to a server process (`workloads/rpc_oslo.py`), both followed by the protocols and
//! python tracers. `rpc.parquet` must hold every message each side sent and received, the
//! calls paired with their replies across connections, nothing more; the broker connections
//! are AMQP and every byte of them was parsed.

use std::{collections::HashSet, path::Path, time::Duration};

use arrow::array::RecordBatch;
use scalpels_tests::{servers, *};
use serde_json::Value;

const CALLS: usize = 6;
const CASTS: usize = 4;

/// One row of `rpc.parquet`.
#[derive(Debug, Clone)]
struct Rpc {
    time: i64,
    pid: u64,
    conn_id: u64,
    direction: String,
    exchange: String,
    routing_key: String,
    kind: String,
    method: Option<String>,
    msg_id: Option<String>,
    reply_q: Option<String>,
    latency: Option<i64>,
    failure: Option<String>,
    body_bytes: u64,
    python_stack_id: Option<u64>,
}

fn rpc_rows(run: &Path) -> Vec<Rpc> {
    let table = read_table(&run.join("rpc.parquet"));
    let (times, pids, conn_ids, body_bytes) = (
        i64s(&table, "time"),
        u64s(&table, "pid"),
        u64s(&table, "conn_id"),
        u64s(&table, "body_bytes"),
    );
    let (directions, exchanges, routing_keys, kinds) = (
        strings(&table, "direction"),
        strings(&table, "exchange"),
        strings(&table, "routing_key"),
        strings(&table, "kind"),
    );
    let (methods, msg_ids, reply_qs, failures) = (
        optional_strings(&table, "method"),
        optional_strings(&table, "msg_id"),
        optional_strings(&table, "reply_q"),
        optional_strings(&table, "failure"),
    );
    let latencies = optional_i64s(&table, "latency");
    let stacks = optional_u64s(&table, "python_stack_id");
    let mut rows: Vec<Rpc> = (0..table.num_rows())
        .map(|i| Rpc {
            time: times[i],
            pid: pids[i],
            conn_id: conn_ids[i],
            direction: directions[i].clone(),
            exchange: exchanges[i].clone(),
            routing_key: routing_keys[i].clone(),
            kind: kinds[i].clone(),
            method: methods[i].clone(),
            msg_id: msg_ids[i].clone(),
            reply_q: reply_qs[i].clone(),
            latency: latencies[i],
            failure: failures[i].clone(),
            body_bytes: body_bytes[i],
            python_stack_id: stacks[i],
        })
        .collect();
    rows.sort_by_key(|r| r.time);
    rows
}

fn of<'a>(rows: &'a [Rpc], pid: u64, direction: &str, kind: &str) -> Vec<&'a Rpc> {
    rows.iter()
        .filter(|r| r.pid == pid && r.direction == direction && r.kind == kind)
        .collect()
}

fn only_event<'a>(printed: &'a [Value], event: &str) -> Vec<&'a Value> {
    printed.iter().filter(|v| v["event"] == event).collect()
}

fn text(v: &Value) -> String {
    v.as_str().expect("a string").to_owned()
}

/// Each `rows[i]` came from the workload's `function` at the line of its source holding
/// `call`, by its Python stack.
fn assert_called_from(run: &Path, rows: &[&Rpc], function: &str, call: &str) {
    let stacks: RecordBatch = read_table(&run.join("python_stacks.parquet"));
    let (ids, functions, files, lines) = (
        u64s(&stacks, "stack_id"),
        strings(&stacks, "function"),
        strings(&stacks, "file"),
        u64s(&stacks, "line"),
    );
    let script = workload("rpc_oslo.py");
    let source = std::fs::read_to_string(&script).unwrap();
    let line = source.lines().position(|l| l.contains(call)).unwrap() as u64 + 1;
    for row in rows {
        let stack = row
            .python_stack_id
            .unwrap_or_else(|| panic!("no Python stack: {row:?}"));
        let frames: Vec<(String, u64)> = (0..stacks.num_rows())
            .filter(|&f| ids[f] == stack && files[f] == script)
            .map(|f| (functions[f].clone(), lines[f]))
            .collect();
        assert!(
            frames.contains(&(function.to_owned(), line)),
            "{call}: frames of rpc_oslo.py in stack {stack}: {frames:?}"
        );
    }
}

#[test]
fn calls_casts_and_replies_of_both_processes_paired_across_connections() {
    calls_casts_and_replies_traced(false);
}

/// The same over AMQP with TLS (amqps): read in plaintext from libssl in both processes.
#[test]
fn calls_casts_and_replies_over_tls_are_paired_the_same() {
    calls_casts_and_replies_traced(true);
}

fn calls_casts_and_replies_traced(tls: bool) {
    let broker = servers::rabbitmq();
    let out = out_dir(if tls { "rpc-oslo-tls" } else { "rpc-oslo" });
    let (calls, casts) = (CALLS.to_string(), CASTS.to_string());
    let (url, broker_port) = if tls {
        (broker.tls_transport_url(), broker.tls_port)
    } else {
        (broker.transport_url(), broker.port)
    };
    let script = workload("rpc_oslo.py");
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "protocols,python",
        "--",
        python(),
        &script,
        &url,
        "--calls",
        &calls,
        "--casts",
        &casts,
    ];
    let certificate = broker.certificate.to_str().unwrap();
    if tls {
        args.extend(["--tls", certificate]);
    }
    let output = trace(&args, Duration::from_secs(120));
    let run = run_dir(&output);
    let printed = printed_json(&output.stdout, None);
    let config = only_event(&printed, "config")[0];
    let (exchange, topic, server_name) = (
        text(&config["exchange"]),
        text(&config["topic"]),
        text(&config["server"]),
    );
    let (call_method, cast_method) = (text(&config["call_method"]), text(&config["cast_method"]));
    let sleep_ns = (config["call_sleep_ms"].as_f64().unwrap() * 1e6) as i64;
    let printed_calls = only_event(&printed, "call");
    assert_eq!(printed_calls.len(), CALLS, "{printed:?}");
    assert_eq!(only_event(&printed, "done").len(), 1);
    let client = printed_calls[0]["pid"].as_u64().unwrap();
    let server = only_event(&printed, "ready")[0]["pid"].as_u64().unwrap();
    assert_ne!(client, server);

    let rows = rpc_rows(&run);
    for pid in [client, server] {
        let mine: Vec<&Rpc> = rows.iter().filter(|r| r.pid == pid).collect();
        // Calls and their replies, the casts: nothing else went over the wire.
        assert_eq!(mine.len(), 2 * CALLS + CASTS, "pid {pid}: {mine:#?}");
        for row in mine {
            assert_eq!(row.failure, None, "{row:?}");
            assert!(row.body_bytes > 0, "{row:?}");
        }
    }

    // The client's calls, in the order it made them, each with the latency it waited: at
    // least the server's sleep, at most what the client measured around call().
    let sent_calls = of(&rows, client, "sent", "call");
    assert_eq!(sent_calls.len(), CALLS);
    let replies_back = of(&rows, client, "received", "reply");
    assert_eq!(replies_back.len(), CALLS);
    for (call, printed) in sent_calls.iter().zip(&printed_calls) {
        assert_eq!(
            (call.exchange.as_str(), call.routing_key.as_str()),
            (exchange.as_str(), topic.as_str()),
            "a call to the topic"
        );
        assert_eq!(call.method.as_deref(), Some(call_method.as_str()));
        let msg_id = call.msg_id.as_deref().expect("a call has a msg_id");
        let reply_q = call
            .reply_q
            .as_deref()
            .expect("a call names its reply queue");
        assert!(reply_q.starts_with("reply_"), "{call:?}");
        let latency = call.latency.expect("a call paired with its reply");
        let measured_ns = (printed["latency_ms"].as_f64().unwrap() * 1e6) as i64;
        assert!(
            latency >= sleep_ns && latency <= measured_ns,
            "latency {latency} ns: not within the sleep {sleep_ns} and the client's {measured_ns}"
        );
        let replies: Vec<&&Rpc> = replies_back
            .iter()
            .filter(|r| r.msg_id.as_deref() == Some(msg_id))
            .collect();
        assert_eq!(replies.len(), 1, "replies to {msg_id}");
        let reply = replies[0];
        // Back on the client's reply-queue connection, through the default exchange.
        assert_eq!(
            (reply.exchange.as_str(), reply.routing_key.as_str()),
            ("", reply_q)
        );
        assert_eq!((reply.method.as_deref(), reply.latency), (None, None));
        assert_ne!(reply.conn_id, call.conn_id);
        assert_eq!(latency, reply.time - call.time);
    }
    let msg_ids: HashSet<&str> = sent_calls
        .iter()
        .map(|c| c.msg_id.as_deref().unwrap())
        .collect();
    assert_eq!(msg_ids.len(), CALLS, "every call has its own msg_id");

    // The server received the same calls from the topic's queue and answered each to the
    // client's reply queue; its side of a call is the time it held it, the sleep included.
    let received_calls = of(&rows, server, "received", "call");
    let sent_replies = of(&rows, server, "sent", "reply");
    let ids = |rows: &[&Rpc]| -> HashSet<String> {
        rows.iter().map(|r| r.msg_id.clone().unwrap()).collect()
    };
    let expected_ids: HashSet<String> = msg_ids.iter().map(|s| s.to_string()).collect();
    assert_eq!(ids(&received_calls), expected_ids);
    assert_eq!(ids(&sent_replies), expected_ids);
    for call in &received_calls {
        assert_eq!(
            (
                call.exchange.as_str(),
                call.routing_key.as_str(),
                call.method.as_deref()
            ),
            (
                exchange.as_str(),
                topic.as_str(),
                Some(call_method.as_str())
            )
        );
        let held = call
            .latency
            .expect("the server's call paired with its reply");
        assert!(held >= sleep_ns, "{call:?}");
    }
    for reply in &sent_replies {
        assert_eq!(reply.exchange, "");
        assert_eq!(Some(&reply.routing_key), sent_calls[0].reply_q.as_ref());
    }
    // One clock for both processes: each call leaves the client, reaches the server, is
    // answered and comes back, in that order.
    for call in &sent_calls {
        let with_id =
            |rows: &[&Rpc]| -> i64 { rows.iter().find(|r| r.msg_id == call.msg_id).unwrap().time };
        let steps = [
            call.time,
            with_id(&received_calls),
            with_id(&sent_replies),
            with_id(&replies_back),
        ];
        assert!(steps.is_sorted(), "{:?}: {steps:?}", call.msg_id);
    }

    // Casts: to the one server by name (`topic.server`), no msg_id, no latency, on both sides.
    let server_key = format!("{topic}.{server_name}");
    for (pid, direction) in [(client, "sent"), (server, "received")] {
        let cast_rows = of(&rows, pid, direction, "cast");
        assert_eq!(cast_rows.len(), CASTS, "{direction}");
        for cast in &cast_rows {
            assert_eq!(
                (
                    cast.exchange.as_str(),
                    cast.routing_key.as_str(),
                    cast.method.as_deref()
                ),
                (
                    exchange.as_str(),
                    server_key.as_str(),
                    Some(cast_method.as_str())
                )
            );
            assert_eq!((&cast.msg_id, cast.latency), (&None, None), "{cast:?}");
        }
    }

    // The code that published: the workload's client() at its call() and cast() lines.
    assert_called_from(&run, &sent_calls, "client", "rpc_client.call(");
    assert_called_from(
        &run,
        &of(&rows, client, "sent", "cast"),
        "client",
        "to_server.cast(",
    );

    // Every broker connection of both processes is AMQP and was parsed to the last byte.
    let conns = read_table(&run.join("connections.parquet"));
    let (conn_pids, remotes, protocols, roles) = (
        u64s(&conns, "pid"),
        strings(&conns, "remote_addr"),
        strings(&conns, "protocol"),
        strings(&conns, "role"),
    );
    let conn_tls = bools(&conns, "tls");
    let broker_addr = format!("127.0.0.1:{broker_port}");
    for pid in [client, server] {
        let to_broker: Vec<(&str, &str, bool)> = (0..conns.num_rows())
            .filter(|&i| conn_pids[i] == pid && remotes[i] == broker_addr)
            .map(|i| (roles[i].as_str(), protocols[i].as_str(), conn_tls[i]))
            .collect();
        assert!(to_broker.len() >= 2, "pid {pid}: {to_broker:?}");
        assert!(
            to_broker.iter().all(|&c| c == ("client", "amqp", tls)),
            "pid {pid}: {to_broker:?}"
        );
    }
    let manifest = manifest(&run);
    let protocols = manifest["tracers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "protocols")
        .expect("the protocols tracer in the manifest");
    assert_eq!(protocols["drops"]["events_dropped"], 0);
    for key in ["amqp_bytes", "amqp_messages"] {
        let unparsed = protocols["unparsed"][key].as_u64().unwrap_or(0);
        assert_eq!(unparsed, 0, "{key}: {}", protocols["unparsed"]);
    }
}
