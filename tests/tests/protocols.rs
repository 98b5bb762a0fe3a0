//! The protocols tracer, traced for real: connections of every family with their addresses,
//! roles and exact byte counts, connections made before the trace, and what is parsed from
//! their payloads.

use std::time::Duration;

use arrow::array::{Array as _, RecordBatch};
use scalpels_tests::*;

/// One row of `connections.parquet`.
#[derive(Debug, PartialEq)]
struct Conn {
    role: String,
    family: String,
    local: String,
    remote: String,
    protocol: String,
    sent: u64,
    received: u64,
    not_captured: u64,
    opened: bool,
    closed: bool,
}

fn connections(run: &std::path::Path, pid: u64) -> Vec<Conn> {
    let table: RecordBatch = read_table(&run.join("connections.parquet"));
    let pids = u64s(&table, "pid");
    let (roles, families, protocols) = (
        strings(&table, "role"),
        strings(&table, "family"),
        strings(&table, "protocol"),
    );
    let (locals, remotes) = (strings(&table, "local_addr"), strings(&table, "remote_addr"));
    let (sent, received, not_captured) = (
        u64s(&table, "bytes_sent"),
        u64s(&table, "bytes_received"),
        u64s(&table, "bytes_not_captured"),
    );
    let (opened, closed) = (
        table.column_by_name("opened").unwrap(),
        table.column_by_name("closed").unwrap(),
    );
    (0..table.num_rows())
        .filter(|&i| pids[i] == pid)
        .map(|i| Conn {
            role: roles[i].clone(),
            family: families[i].clone(),
            local: locals[i].clone(),
            remote: remotes[i].clone(),
            protocol: protocols[i].clone(),
            sent: sent[i],
            received: received[i],
            not_captured: not_captured[i],
            opened: !opened.is_null(i),
            closed: !closed.is_null(i),
        })
        .collect()
}

#[test]
fn connections_of_every_family_with_addresses_roles_and_exact_bytes() {
    let out = out_dir("protocols-connections");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "protocols",
            "--",
            python(),
            &workload("socket_talk.py"),
            "talk",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let value = |key: &str| printed(&output.stdout, key)[0];
    let mut conns = connections(&run, value("pid"));
    conns.sort_by(|a, b| (&a.family, &a.role).cmp(&(&b.family, &b.role)));
    let mut expected = Vec::new();
    for (family, name, host) in [
        ("ipv4", "tcp", "127.0.0.1"),
        ("ipv6", "tcp6", "[::1]"),
        ("unix", "unix", ""),
    ] {
        let (request, response) = (value(&format!("{name}_request")), value(&format!("{name}_response")));
        let (client, server) = if family == "unix" {
            (String::new(), format!("{}/talk.sock", out.display()))
        } else {
            (
                format!("{host}:{}", value(&format!("{name}_client_port"))),
                format!("{host}:{}", value(&format!("{name}_server_port"))),
            )
        };
        let conn = |role: &str, local: &str, remote: &str, sent, received, not_captured| Conn {
            role: role.into(),
            family: family.into(),
            local: local.into(),
            remote: remote.into(),
            protocol: "unknown".into(),
            sent,
            received,
            not_captured,
            opened: true,
            closed: true,
        };
        // The client's pieces all fit the 4096-byte prefix; the server's 10000-byte sends do not.
        expected.push(conn("client", &client, &server, request, response, 0));
        let uncopied = value(&format!("{name}_server_uncopied"));
        expected.push(conn("server", &server, &client, response, request, uncopied));
    }
    assert_eq!(conns, expected);
    // Python's stdout (a pipe) and the listening sockets are not connections.
    let manifest = manifest(&run);
    assert_eq!(manifest["tracers"][0]["name"], "protocols");
    assert_eq!(manifest["tracers"][0]["drops"]["events_dropped"], 0);
}

#[test]
fn connections_made_before_the_trace_are_followed_from_their_first_bytes() {
    let out = out_dir("protocols-preopened");
    let go = out.join("go");
    let workload_proc = start_python(&[
        &workload("socket_talk.py"),
        "preopened",
        go.to_str().unwrap(),
    ]);
    let pid = workload_proc.pid();
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "protocols",
        "--pid",
        &pid.to_string(),
        "--duration",
        "60s",
    ]);
    release_when_attached(&out, &go);
    let workload_out = workload_proc.output();
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let run = run_dir(&output);
    let value = |key: &str| printed(&workload_out.stdout, key)[0];
    let (client, server) = (
        format!("127.0.0.1:{}", value("client_port")),
        format!("127.0.0.1:{}", value("server_port")),
    );
    let (request, response) = (value("request"), value("response"));
    let mut conns = connections(&run, pid.into());
    conns.sort_by(|a, b| a.role.cmp(&b.role));
    let conn = |role: &str, local: &str, remote: &str, sent, received| Conn {
        role: role.into(),
        family: "ipv4".into(),
        local: local.into(),
        remote: remote.into(),
        protocol: "http".into(),
        sent,
        received,
        not_captured: 0,
        // Made before the trace; closed by the process's exit.
        opened: false,
        closed: true,
    };
    assert_eq!(
        conns,
        [
            conn("client", &client, &server, request, response),
            conn("server", &server, &client, response, request),
        ]
    );
}
