//! SQL over sockets, traced for real: the `sql_mysql.py` and `sql_postgres.py` workloads
//! against the tests' MariaDB and PostgreSQL (text and binary MySQL protocols, simple and
//! extended PostgreSQL ones), each printed statement found in `sql.parquet` on its connection
//! with its rows and error, and each connection's rows checked against the server's own log.

use std::{collections::HashMap, path::Path, time::Duration};

use arrow::array::{Array as _, RecordBatch};
use scalpels_tests::{servers, *};
use serde_json::Value;

/// One row of `sql.parquet`.
#[derive(Debug, Clone, PartialEq)]
struct Sql {
    conn_id: u64,
    operation: String,
    statement: String,
    rows: Option<u64>,
    error_code: Option<String>,
    latency: Option<i64>,
    complete: bool,
}

fn sql_rows(run: &Path, pid: u32) -> Vec<Sql> {
    let table: RecordBatch = read_table(&run.join("sql.parquet"));
    let pids = u64s(&table, "pid");
    let conn_ids = optional_u64s(&table, "conn_id");
    let (operations, statements) = (strings(&table, "operation"), strings(&table, "statement"));
    let codes = table.column_by_name("error_code").unwrap();
    let code_values = strings(&table, "error_code");
    let rows = optional_u64s(&table, "rows");
    let latencies = table.column_by_name("latency").unwrap();
    let latency_values = i64s(&table, "latency");
    let complete = bools(&table, "complete");
    let times = i64s(&table, "time");
    let mut mine: Vec<usize> = (0..table.num_rows())
        .filter(|&i| pids[i] == u64::from(pid))
        .collect();
    mine.sort_by_key(|&i| times[i]);
    mine.into_iter()
        .map(|i| Sql {
            conn_id: conn_ids[i].expect("a socket's SQL has a connection"),
            operation: operations[i].clone(),
            statement: statements[i].clone(),
            rows: rows[i],
            error_code: (!codes.is_null(i)).then(|| code_values[i].clone()),
            latency: (!latencies.is_null(i)).then_some(latency_values[i]),
            complete: complete[i],
        })
        .collect()
}

/// `connections.parquet` of the process: local port -> conn_id.
fn conn_ids_by_port(run: &Path, pid: u32) -> HashMap<u64, u64> {
    let table = read_table(&run.join("connections.parquet"));
    let (pids, ids) = (u64s(&table, "pid"), u64s(&table, "conn_id"));
    let locals = strings(&table, "local_addr");
    (0..table.num_rows())
        .filter(|&i| pids[i] == u64::from(pid))
        .filter_map(|i| {
            let port = locals[i].rsplit(':').next()?.parse().ok()?;
            Some((port, ids[i]))
        })
        .collect()
}

/// Runs `workload` (JSON lines, `--go`) under the protocols tracer with `--sql-literals`;
/// returns what it printed and the run directory.
fn traced(name: &str, workload_args: &[&str]) -> (Vec<Value>, std::path::PathBuf, u32) {
    let out = out_dir(name);
    let go = out.join("go");
    let mut args: Vec<&str> = workload_args.to_vec();
    args.extend(["--go", go.to_str().unwrap()]);
    let workload_proc = start_python(&args);
    let pid = workload_proc.pid();
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "protocols",
        "--sql-literals",
        "--pid",
        &pid.to_string(),
        "--duration",
        "60s",
    ]);
    release_when_attached(&out, &go);
    let workload_out = workload_proc.output();
    let printed: Vec<Value> = String::from_utf8_lossy(&workload_out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert!(
        printed.iter().any(|v| v["event"] == "done"),
        "the workload did not finish: {printed:?}"
    );
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    (printed, run_dir(&output), pid)
}

/// The printed queries of one connection are found, in order, among its commands (the
/// drivers add their own: SET NAMES, pings, statement resets), with their rows and errors.
fn check_printed(rows: &[&Sql], queries: &[&Value]) {
    let mut next = queries.iter().peekable();
    for row in rows {
        let Some(query) = next.peek() else {
            break;
        };
        let runs = matches!(row.operation.as_str(), "query" | "execute")
            || row.operation == "prepare" && row.error_code.is_some();
        if !runs || query["statement"].as_str() != Some(row.statement.as_str()) {
            continue;
        }
        assert_eq!(row.rows, query["rows"].as_u64(), "{query}: {row:?}");
        assert_eq!(
            row.error_code.as_deref(),
            query["error_code"].as_str(),
            "{query}"
        );
        next.next();
    }
    assert!(
        next.peek().is_none(),
        "not found: {:?}",
        next.collect::<Vec<_>>()
    );
}

#[test]
fn mysql_text_and_binary_protocols_match_the_general_log() {
    let db = servers::mariadb();
    let port = db.port.to_string();
    let (printed, run, pid) = traced(
        "sql-mysql",
        &[
            &workload("sql_mysql.py"),
            "127.0.0.1",
            &port,
            servers::SQL_USER,
            servers::SQL_PASSWORD,
            servers::SQL_DATABASE,
        ],
    );
    let rows = sql_rows(&run, pid);
    let ports = conn_ids_by_port(&run, pid);
    for connected in printed.iter().filter(|v| v["event"] == "connected") {
        let session = connected["session"].as_u64().unwrap();
        let conn_id = ports[&connected["local_port"].as_u64().unwrap()];
        let mine: Vec<&Sql> = rows.iter().filter(|r| r.conn_id == conn_id).collect();
        let queries: Vec<&Value> = printed
            .iter()
            .filter(|v| v["event"] == "query" && v["session"] == session)
            .collect();
        check_printed(&mine, &queries);
        for row in &mine {
            assert!(row.complete, "{row:?}");
            assert!(row.statement != servers::SQL_PASSWORD);
            // Everything but COM_QUIT and COM_STMT_CLOSE is answered.
            let answered = !matches!(row.operation.as_str(), "quit" | "close");
            assert_eq!(row.latency.is_some_and(|l| l > 0), answered, "{row:?}");
        }
        // The server's account: its Query entries are our query rows, its Prepare entries
        // our prepare rows that succeeded (it logs no failed one), its Execute entries our
        // execute rows.
        let log = db.session(session);
        let logged = |command: &str| -> Vec<String> {
            log.iter()
                .filter(|e| e.command == command)
                .map(|e| e.argument.clone())
                .collect()
        };
        let of = |operation: &str, failed: bool| -> Vec<String> {
            mine.iter()
                .filter(|r| r.operation == operation && (failed || r.error_code.is_none()))
                .map(|r| r.statement.clone())
                .collect()
        };
        assert_eq!(of("query", true), logged("Query"), "session {session}");
        assert_eq!(of("prepare", false), logged("Prepare"), "session {session}");
        assert_eq!(
            of("execute", true).len(),
            logged("Execute").len(),
            "session {session}"
        );
    }
}

#[test]
fn postgresql_simple_and_extended_protocols_match_the_server_log() {
    let db = servers::postgres();
    let port = db.port.to_string();
    let (printed, run, pid) = traced(
        "sql-postgres",
        &[
            &workload("sql_postgres.py"),
            "127.0.0.1",
            &port,
            servers::SQL_USER,
            servers::SQL_PASSWORD,
            servers::SQL_DATABASE,
        ],
    );
    let rows = sql_rows(&run, pid);
    let ports = conn_ids_by_port(&run, pid);
    for connected in printed.iter().filter(|v| v["event"] == "connected") {
        let session = connected["session"].as_u64().unwrap();
        let conn_id = ports[&connected["local_port"].as_u64().unwrap()];
        let mine: Vec<&Sql> = rows.iter().filter(|r| r.conn_id == conn_id).collect();
        let queries: Vec<&Value> = printed
            .iter()
            .filter(|v| v["event"] == "query" && v["session"] == session)
            .collect();
        check_printed(&mine, &queries);
        for row in &mine {
            assert!(
                row.complete && row.latency.is_some_and(|l| l > 0),
                "{row:?}"
            );
        }
        // The server's account: each statement it ran or refused is one of our rows (a Parse
        // that succeeded is not a statement run: it has a row of its own only when no
        // Execute of its batch ran it).
        let logged: Vec<String> = db.session(session).into_iter().map(|s| s.text).collect();
        let ours: Vec<String> = mine
            .iter()
            .filter(|r| r.operation != "prepare" || r.error_code.is_some())
            .map(|r| r.statement.clone())
            .collect();
        assert_eq!(ours, logged, "session {session}");
    }
}
