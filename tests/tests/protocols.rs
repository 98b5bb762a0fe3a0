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
    let (locals, remotes) = (
        strings(&table, "local_addr"),
        strings(&table, "remote_addr"),
    );
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
        let (request, response) = (
            value(&format!("{name}_request")),
            value(&format!("{name}_response")),
        );
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
        expected.push(conn(
            "server", &server, &client, response, request, uncopied,
        ));
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

#[test]
fn http_requests_with_status_bytes_latency_and_the_python_code_that_sent_them() {
    http_requests_traced(false);
}

/// The same requests over HTTPS: the same rows, read in plaintext from libssl on both ends.
#[test]
fn https_requests_are_read_in_plaintext_through_libssl() {
    http_requests_traced(true);
}

fn http_requests_traced(tls: bool) {
    let out = out_dir(if tls {
        "protocols-https"
    } else {
        "protocols-http"
    });
    let script = workload("http_talk.py");
    let certificate = tls.then(|| tls_certificate(&out));
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "protocols,python",
        "--",
        python(),
        &script,
    ];
    if let Some((cert, key)) = &certificate {
        args.extend(["--tls", cert.to_str().unwrap(), key.to_str().unwrap()]);
    }
    let output = trace(&args, Duration::from_secs(60));
    let run = run_dir(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pid = printed(&output.stdout, "pid")[0];
    let port = printed(&output.stdout, "port")[0];
    // METHOD PATH STATUS REQUEST_BYTES RESPONSE_BYTES, as the client saw them.
    let expected: Vec<Vec<String>> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("request="))
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect();
    assert_eq!(expected.len(), 8, "{stdout}");
    assert!(expected.iter().any(|r| r[1] == "/missing" && r[2] == "404"));

    let http = read_table(&run.join("http.parquet"));
    let (pids, roles, methods, paths, routes, hosts) = (
        u64s(&http, "pid"),
        strings(&http, "role"),
        strings(&http, "method"),
        strings(&http, "path"),
        strings(&http, "route"),
        strings(&http, "host_header"),
    );
    let (statuses, request_bytes, response_bytes) = (
        u64s(&http, "status"),
        u64s(&http, "request_bytes"),
        u64s(&http, "response_bytes"),
    );
    let (conn_ids, latencies, times) = (
        u64s(&http, "conn_id"),
        i64s(&http, "latency"),
        i64s(&http, "time"),
    );
    let stack_ids = optional_u64s(&http, "python_stack_id");
    let conns = read_table(&run.join("connections.parquet"));
    let (conn_table_ids, conn_protocols) = (u64s(&conns, "conn_id"), strings(&conns, "protocol"));
    let conn_tls = bools(&conns, "tls");
    // Both ends are in the process: each request is a client row and a server row.
    for role in ["client", "server"] {
        let mut rows: Vec<usize> = (0..http.num_rows())
            .filter(|&i| pids[i] == pid && roles[i] == role)
            .collect();
        rows.sort_by_key(|&i| times[i]);
        let got: Vec<Vec<String>> = rows
            .iter()
            .map(|&i| {
                vec![
                    methods[i].clone(),
                    paths[i].clone(),
                    statuses[i].to_string(),
                    request_bytes[i].to_string(),
                    response_bytes[i].to_string(),
                ]
            })
            .collect();
        assert_eq!(got, expected, "{role} rows");
        // The route: no query string, the users' ids (whatever their form) as {id}.
        let got_routes: Vec<&str> = rows.iter().map(|&i| routes[i].as_str()).collect();
        let users = "/v3/users/{id}";
        assert_eq!(
            got_routes,
            [
                "/items", "/missing", "/echo", "/items", "/items", users, users, users
            ],
            "{role} routes"
        );
        for &i in &rows {
            assert_eq!(hosts[i], format!("127.0.0.1:{port}"));
            assert!(latencies[i] > 0 && latencies[i] < 10_000_000_000);
            let conn = conn_table_ids
                .iter()
                .position(|&c| c == conn_ids[i])
                .unwrap();
            assert_eq!(conn_protocols[conn], "http");
            assert_eq!(conn_tls[conn], tls);
        }
        // The 404 closed its connection: the POST after it went on a new one, kept alive
        // for the HEAD; the DELETEs share a third.
        let conn_of = |n: usize| conn_ids[rows[n]];
        assert_eq!(conn_of(0), conn_of(1));
        assert_ne!(conn_of(1), conn_of(2));
        assert_eq!(conn_of(2), conn_of(3));
        assert_ne!(conn_of(3), conn_of(4));
        assert_ne!(conn_of(4), conn_of(5));
        assert_eq!(conn_of(5), conn_of(7));
    }

    // `report` lists one endpoint per route: the three users' DELETEs are one line a side.
    let report = analysis_json(&["report", run.to_str().unwrap(), "--format", "json"]);
    let endpoints = keyed_rows(&report, "sections", "http");
    let deletes: Vec<(&str, &str, u64)> = endpoints
        .iter()
        .filter(|r| r["method"] == "DELETE")
        .map(|r| {
            (
                r["role"].as_str().unwrap(),
                r["route"].as_str().unwrap(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(deletes.len(), 2, "{endpoints:#?}");
    for role in ["client", "server"] {
        assert!(
            deletes.contains(&(role, "/v3/users/{id}", 3)),
            "{deletes:?}"
        );
    }

    // A client request names the line of the workload that made it; the server's answers
    // have no request stack.
    let stacks = read_table(&run.join("python_stacks.parquet"));
    let (ids, functions, files, lines) = (
        u64s(&stacks, "stack_id"),
        strings(&stacks, "function"),
        strings(&stacks, "file"),
        u64s(&stacks, "line"),
    );
    let source = std::fs::read_to_string(&script).unwrap();
    let line_of = |text: &str| source.lines().position(|l| l.contains(text)).unwrap() as u64 + 1;
    let mut client_rows: Vec<usize> = (0..http.num_rows())
        .filter(|&i| pids[i] == pid && roles[i] == "client")
        .collect();
    client_rows.sort_by_key(|&i| times[i]);
    let calls = [
        "request(conn, \"GET\", \"/items?page=2\")",
        "request(conn, \"GET\", \"/missing\")",
        "request(conn, \"POST\"",
        "request(conn, \"HEAD\"",
        "request(other, \"GET\"",
        "request(users, \"DELETE\"",
        "request(users, \"DELETE\"",
        "request(users, \"DELETE\"",
    ];
    for (&i, call) in client_rows.iter().zip(calls) {
        let stack = stack_ids[i].expect("a client request has its Python stack");
        let caller = (0..stacks.num_rows())
            .find(|&f| ids[f] == stack && functions[f] == "client_requests" && files[f] == script);
        let caller = caller.unwrap_or_else(|| panic!("no client_requests frame for {call}"));
        assert_eq!(lines[caller], line_of(call), "{call}");
    }
    for i in (0..http.num_rows()).filter(|&i| pids[i] == pid && roles[i] == "server") {
        assert_eq!(stack_ids[i], None);
    }
}
