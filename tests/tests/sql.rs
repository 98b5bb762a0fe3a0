//! The protocols tracer on real SQL servers: MariaDB through PyMySQL (text protocol) and
//! mysql-connector (prepared statements), PostgreSQL through psycopg2 (simple Query) and
//! psycopg 3 (extended protocol). Each workload is traced twice at once, with statements
//! normalized and with `--sql-literals`; `sql.parquet` must hold exactly what the workload
//! printed, in order, with the server's own log of each session agreeing.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use arrow::{
    array::{Array as _, AsArray as _, RecordBatch},
    compute::cast,
    datatypes::DataType,
};
use scalpels_tests::{
    servers::{self, SQL_DATABASE, SQL_PASSWORD, SQL_USER},
    *,
};
use serde_json::Value;

/// One row of `sql.parquet`.
#[derive(Clone, Debug)]
struct SqlRow {
    time: i64,
    tid: u64,
    db_system: String,
    operation: String,
    statement: String,
    fingerprint: u64,
    rows: Option<u64>,
    error_code: Option<String>,
    error: Option<String>,
    latency: Option<i64>,
    complete: bool,
    python_stack_id: Option<u64>,
}

/// What a row should hold, from what the workload printed.
#[derive(Clone, Debug, PartialEq)]
struct Expected {
    operation: String,
    /// As sent, literals included.
    statement: String,
    rows: Option<u64>,
    error_code: Option<String>,
    error: Option<String>,
}

/// One connection of a traced workload: what it printed on connecting and its rows in
/// `sql.parquet`, in the order the tracer wrote them.
struct Session {
    printed: Value,
    /// The workload's `query` events on this connection.
    queries: Vec<Value>,
    rows: Vec<SqlRow>,
}

struct Traced {
    run: PathBuf,
    pid: u64,
    script: String,
    sessions: Vec<Session>,
    /// `python_stacks.parquet`: (stack_id, function, file) of every frame.
    frames: Vec<(u64, String, String)>,
}

fn optional_strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = cast(batch.column_by_name(column).unwrap(), &DataType::Utf8).unwrap();
    array
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

/// Traces `script` against the server on `port` (from its first syscall, so every
/// connection is seen from its handshake on).
/// Traces `script` against the server on `port`; over TLS when given the certificate to
/// trust (as the user who may connect only that way).
fn trace_workload(
    test: &str,
    script: &str,
    port: u16,
    literals: bool,
    tls: Option<&Path>,
) -> Traced {
    let out = out_dir(test);
    let port = port.to_string();
    let script = workload(script);
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "protocols,python",
    ];
    if literals {
        args.push("--sql-literals");
    }
    args.extend([
        "--",
        python(),
        &script,
        "127.0.0.1",
        &port,
        if tls.is_some() {
            servers::MARIADB_TLS_USER
        } else {
            SQL_USER
        },
        SQL_PASSWORD,
        SQL_DATABASE,
    ]);
    if let Some(certificate) = tls {
        args.extend(["--tls", certificate.to_str().unwrap()]);
    }
    let output = trace(&args, Duration::from_secs(90));
    let run = run_dir(&output);
    let printed = printed_json(&output.stdout, None);
    let queries = printed.iter().filter(|v| v["event"] == "query").count() as u64;
    let done = printed.iter().find(|v| v["event"] == "done");
    assert_eq!(
        done.map(|d| d["queries"].as_u64().unwrap()),
        Some(queries),
        "the workload did not finish: {}",
        stderr(&output)
    );

    let table = read_table(&run.join("sql.parquet"));
    let (pids, conn_ids, tids) = (
        u64s(&table, "pid"),
        u64s(&table, "conn_id"),
        u64s(&table, "tid"),
    );
    let (times, latency) = (i64s(&table, "time"), i64s(&table, "latency"));
    let latency_column = table.column_by_name("latency").unwrap();
    let (systems, operations, statements) = (
        strings(&table, "db_system"),
        strings(&table, "operation"),
        strings(&table, "statement"),
    );
    let (fingerprints, rows, stacks) = (
        u64s(&table, "fingerprint"),
        optional_u64s(&table, "rows"),
        optional_u64s(&table, "python_stack_id"),
    );
    let (codes, errors, complete) = (
        optional_strings(&table, "error_code"),
        optional_strings(&table, "error"),
        bools(&table, "complete"),
    );
    let connections = read_table(&run.join("connections.parquet"));
    let (conn_table_ids, conn_pids, locals, protocols) = (
        u64s(&connections, "conn_id"),
        u64s(&connections, "pid"),
        strings(&connections, "local_addr"),
        strings(&connections, "protocol"),
    );
    let conn_tls = bools(&connections, "tls");

    let connected: Vec<&Value> = printed
        .iter()
        .filter(|v| v["event"] == "connected")
        .collect();
    assert_eq!(connected.len(), 2);
    let pid = connected[0]["pid"].as_u64().unwrap();
    let sessions = connected
        .into_iter()
        .map(|c| {
            let local = format!("127.0.0.1:{}", c["local_port"]);
            let conn = (0..connections.num_rows())
                .find(|&i| conn_pids[i] == pid && locals[i] == local)
                .unwrap_or_else(|| panic!("no connection from {local} in connections.parquet"));
            let system = if script.ends_with("sql_mysql.py") {
                "mysql"
            } else {
                "postgresql"
            };
            assert_eq!(protocols[conn], system);
            assert_eq!(conn_tls[conn], tls.is_some(), "tls of {local}");
            let rows = (0..table.num_rows())
                .filter(|&i| conn_ids[i] == conn_table_ids[conn])
                .map(|i| {
                    assert_eq!(pids[i], pid);
                    SqlRow {
                        time: times[i],
                        tid: tids[i],
                        db_system: systems[i].clone(),
                        operation: operations[i].clone(),
                        statement: statements[i].clone(),
                        fingerprint: fingerprints[i],
                        rows: rows[i],
                        error_code: codes[i].clone(),
                        error: errors[i].clone(),
                        latency: (!latency_column.is_null(i)).then_some(latency[i]),
                        complete: complete[i],
                        python_stack_id: stacks[i],
                    }
                })
                .collect();
            Session {
                queries: printed
                    .iter()
                    .filter(|q| q["event"] == "query" && q["session"] == c["session"])
                    .cloned()
                    .collect(),
                printed: c.clone(),
                rows,
            }
        })
        .collect();
    let stacks = read_table(&run.join("python_stacks.parquet"));
    let frames = u64s(&stacks, "stack_id")
        .into_iter()
        .zip(strings(&stacks, "function"))
        .zip(strings(&stacks, "file"))
        .map(|((id, function), file)| (id, function, file))
        .collect();
    Traced {
        run,
        pid,
        script,
        sessions,
        frames,
    }
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// FNV-1a (64 bit): the fingerprint's definition, so the values are pinned across hosts.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Does `text` read as `template` with each `?` filled by some value?
fn fills(template: &str, text: &str) -> bool {
    let mut parts = template.split('?');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.len() > part.len() && rest.ends_with(part);
        }
        match rest.get(1..).and_then(|r| r.find(part)) {
            Some(at) => rest = &rest[1 + at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The rows of the session that ran statements (not statement closes, resets, quits),
/// after the driver's own set-up, which must be `SET` queries.
fn workload_rows<'a>(session: &'a Session, expected: &[Expected]) -> &'a [SqlRow] {
    let statements: Vec<&SqlRow> = session.rows.iter().filter(|r| runs_sql(r)).collect();
    let setup = statements.len().saturating_sub(expected.len());
    for row in &statements[..setup] {
        assert!(
            row.operation == "query" && row.statement.starts_with("SET "),
            "{row:?}"
        );
    }
    let first = statements.get(setup).map_or(session.rows.len(), |first| {
        session
            .rows
            .iter()
            .position(|r| std::ptr::eq(r, *first))
            .unwrap()
    });
    &session.rows[first..]
}

fn runs_sql(row: &SqlRow) -> bool {
    ["query", "prepare", "execute"].contains(&row.operation.as_str())
}

/// The assertions common to both servers and both modes: every printed statement exactly
/// once, in order, with its rows and error; timing, completeness, fingerprint and the
/// Python code that sent it. `normalized` maps a statement as sent to its normalized form.
fn check_session(
    traced: &Traced,
    session: &Session,
    expected: &[Expected],
    literals: bool,
    normalized: fn(&str) -> String,
    function: &str,
) {
    let driver = &session.printed["driver"];
    let rows: Vec<&SqlRow> = workload_rows(session, expected)
        .iter()
        .filter(|r| runs_sql(r))
        .collect();
    let got: Vec<Expected> = rows
        .iter()
        .map(|r| Expected {
            operation: r.operation.clone(),
            statement: r.statement.clone(),
            rows: r.rows,
            error_code: r.error_code.clone(),
            error: r.error.clone(),
        })
        .collect();
    let want: Vec<Expected> = expected
        .iter()
        .map(|e| Expected {
            statement: if literals {
                e.statement.clone()
            } else {
                normalized(&e.statement)
            },
            ..e.clone()
        })
        .collect();
    assert_eq!(got, want, "{driver}");

    for pair in session.rows.windows(2) {
        assert!(
            pair[0].time <= pair[1].time,
            "{driver}: out of order: {pair:?}"
        );
    }
    for row in &session.rows {
        assert!(row.complete, "{driver}: {row:?}");
        assert_eq!(row.tid, traced.pid, "{driver}: one thread: {row:?}");
        if !literals {
            assert_eq!(row.fingerprint, fnv1a(&row.statement), "{driver}: {row:?}");
        }
        let answered = !["close", "quit"].contains(&row.operation.as_str());
        if answered {
            let latency = row.latency.expect("an answered command has a latency");
            assert!(latency > 0 && latency < 5_000_000_000, "{driver}: {row:?}");
        } else {
            assert_eq!(row.latency, None, "{driver}: {row:?}");
        }
        let stack = row
            .python_stack_id
            .unwrap_or_else(|| panic!("{driver}: no Python stack: {row:?}"));
        assert!(
            called_from(traced, stack, function),
            "{driver}: stack {stack} is not in {function}: {row:?}"
        );
    }
}

/// Does the stack have a frame of `function` in the workload script?
fn called_from(traced: &Traced, stack: u64, function: &str) -> bool {
    traced
        .frames
        .iter()
        .any(|(id, f, file)| *id == stack && f == function && *file == traced.script)
}

/// Statements that differ only by literals share a fingerprint, and only they do (the
/// normalized run: its statements are what the fingerprints hash).
fn check_fingerprints(traced: &Traced) {
    let rows: Vec<&SqlRow> = traced.sessions.iter().flat_map(|s| &s.rows).collect();
    for a in &rows {
        assert_eq!(a.db_system, rows[0].db_system);
        for b in &rows {
            assert_eq!(
                a.fingerprint == b.fingerprint,
                a.statement == b.statement,
                "{a:?}\n{b:?}"
            );
        }
    }
}

/// `report` names each command that carries no statement (`quit`, a driver's `ping`) by its
/// operation, `[quit]`, on a line of its own, rather than one blank line for all of them.
fn check_report_names_bare_commands(traced: &Traced) {
    let bare: BTreeSet<String> = traced
        .sessions
        .iter()
        .flat_map(|s| &s.rows)
        .filter(|r| r.statement.is_empty())
        .map(|r| format!("[{}]", r.operation))
        .collect();
    assert!(bare.contains("[quit]"), "{bare:?}");
    let run = traced.run.to_str().unwrap();
    let output = Command::new(scalpels_trace())
        .args(["report", run, "--format", "json", "--top", "1000"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let section = report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "sql")
        .expect("a sql section");
    let statements: Vec<&str> = section["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["statement"].as_str().unwrap())
        .collect();
    assert!(!statements.contains(&""), "{statements:?}");
    for label in &bare {
        let lines = statements.iter().filter(|s| *s == label).count();
        assert_eq!(lines, 1, "{label} in {statements:?}");
    }
}

/// The SQL password is in no Parquet file of the run: not in their bytes, not in any
/// string value once decoded (compressed pages would hide it from a byte search).
fn check_no_password(run: &Path) {
    let mut files = vec![run.to_owned()];
    let mut parquet = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        parquet += 1;
        let bytes = std::fs::read(&path).unwrap();
        let needle = SQL_PASSWORD.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{}",
            path.display()
        );
        let batch = read_table(&path);
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let Ok(text) = cast(column, &DataType::Utf8) else {
                continue;
            };
            let leaked = text
                .as_string::<i32>()
                .iter()
                .flatten()
                .any(|s| s.contains(SQL_PASSWORD));
            assert!(!leaked, "{} column {}", path.display(), field.name());
        }
    }
    assert!(parquet >= 4, "{parquet} Parquet files in {}", run.display());
}

/// Runs the workload traced in both modes at once.
fn trace_both(name: &str, script: &str, port: u16) -> [(Traced, bool); 2] {
    std::thread::scope(|scope| {
        let literal =
            scope.spawn(|| trace_workload(&format!("{name}-literals"), script, port, true, None));
        let normal = trace_workload(&format!("{name}-normalized"), script, port, false, None);
        [(normal, false), (literal.join().unwrap(), true)]
    })
}

/// The same rows of both runs have the same fingerprints: stable across runs.
fn check_same_fingerprints(both: &[(Traced, bool); 2]) {
    let fingerprints = |t: &Traced| -> Vec<Vec<u64>> {
        t.sessions
            .iter()
            .map(|s| s.rows.iter().map(|r| r.fingerprint).collect())
            .collect()
    };
    assert_eq!(fingerprints(&both[0].0), fingerprints(&both[1].0));
}

// ---- MariaDB ----

/// What the tracer should show for a printed MySQL query: a `query` row, or for the binary
/// protocol a `prepare` (when this execution prepared, with the error when that failed) and
/// an `execute`.
fn mysql_expected(query: &Value) -> Vec<Expected> {
    let statement = str_of(&query["statement"]).unwrap();
    let error_code = str_of(&query["error_code"]);
    let error = str_of(&query["error"]);
    let rows = query["rows"].as_u64();
    let row =
        |operation: &str, rows, error_code: &Option<String>, error: &Option<String>| Expected {
            operation: operation.into(),
            statement: statement.clone(),
            rows,
            error_code: error_code.clone(),
            error: error.clone(),
        };
    if query["params"].is_null() {
        return vec![row("query", rows, &error_code, &error)];
    }
    let mut expected = Vec::new();
    if query["prepared"] == true {
        // A failed prepare is the failure; nothing is executed.
        if error_code.is_some() {
            return vec![row("prepare", None, &error_code, &error)];
        }
        expected.push(row("prepare", None, &None, &None));
    }
    expected.push(row("execute", rows, &error_code, &error));
    expected
}

fn mysql_normalized(statement: &str) -> String {
    match statement {
        "CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name VARCHAR(32), qty INT)" => {
            "CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name VARCHAR(?), qty INT)"
        }
        "INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7)"
        | "INSERT INTO items VALUES (4, 'fig', 1)"
        | "INSERT INTO items VALUES (?, ?, ?)" => "INSERT INTO items VALUES (?, ?, ?)",
        "SELECT id, name FROM items WHERE qty > 2 ORDER BY id" => {
            "SELECT id, name FROM items WHERE qty > ? ORDER BY id"
        }
        "UPDATE items SET qty = qty + 1 WHERE id <= 2" => {
            "UPDATE items SET qty = qty + ? WHERE id <= ?"
        }
        "DELETE FROM items WHERE id = 4" => "DELETE FROM items WHERE id = ?",
        other => other,
    }
    .to_owned()
}

#[test]
fn mariadb_statements_over_both_protocols_match_the_workload_and_the_general_log() {
    let db = servers::mariadb();
    let both = trace_both("sql-mariadb", "sql_mysql.py", db.port);
    for (traced, literals) in &both {
        check_mysql_sessions(db, traced, *literals);
        if !*literals {
            check_fingerprints(traced);
            check_report_names_bare_commands(traced);
            check_stacks_export(traced, &["text_protocol", "binary_protocol"]);
        }
        check_no_password(&traced.run);
    }
    check_same_fingerprints(&both);
}

/// The same workload over TLS, as a user the server lets in only that way: PyMySQL and
/// mysql-connector encrypt after the greeting; the rows are read in plaintext from libssl,
/// and equal the workload's and the server's log.
#[test]
fn mariadb_statements_over_tls_match_the_workload_and_the_general_log() {
    let db = servers::mariadb();
    let traced = trace_workload(
        "sql-mariadb-tls",
        "sql_mysql.py",
        db.port,
        true,
        Some(&db.certificate),
    );
    check_mysql_sessions(db, &traced, true);
}

/// Both sessions of the MySQL workload: their rows are what it printed, made by its code; with
/// literals kept, they are the server's general log too.
fn check_mysql_sessions(db: &servers::MariaDb, traced: &Traced, literals: bool) {
    assert_eq!(traced.sessions.len(), 2);
    for session in &traced.sessions {
        let expected: Vec<Expected> = session.queries.iter().flat_map(mysql_expected).collect();
        let function = match session.printed["driver"].as_str() {
            Some("pymysql") => "text_protocol",
            _ => "binary_protocol",
        };
        check_session(
            traced,
            session,
            &expected,
            literals,
            mysql_normalized,
            function,
        );
        if literals {
            check_general_log(db, session);
        }
    }
}

/// `export --of sql` weighs the Python stacks by the latency of the statements they sent: in
/// pprof (read back by `go tool pprof`) one call per row with a stack and their latencies'
/// sum, the workload's `functions` among the frames; in speedscope the same sum.
fn check_stacks_export(traced: &Traced, functions: &[&str]) {
    let table = read_table(&traced.run.join("sql.parquet"));
    let stacks = optional_u64s(&table, "python_stack_id");
    let latency: Vec<i64> = optional_i64s(&table, "latency")
        .into_iter()
        .zip(&stacks)
        .filter(|(_, stack)| stack.is_some())
        .map(|(latency, _)| latency.unwrap_or(0))
        .collect();
    let total: i64 = latency.iter().sum();
    let profile =
        pprof::export_and_read(&traced.run, &["--of", "sql"], &traced.run.join("sql.pb.gz"));
    assert_eq!(profile.sample_types, ["calls/count", "latency/nanoseconds"]);
    assert_eq!(profile.totals(), [latency.len() as i64, total]);
    for function in functions {
        let frame = format!("{function} {}:", traced.script);
        assert!(
            profile
                .samples
                .iter()
                .any(|s| profile.frames(s).iter().any(|f| f.starts_with(&frame))),
            "no stack through {frame}: {profile:?}"
        );
    }
    let speedscope = traced.run.join("sql.speedscope.json");
    let export = Command::new(scalpels_trace())
        .arg("export")
        .arg(&traced.run)
        .args(["--of", "sql", "-o", speedscope.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr(&export));
    let json: Value = serde_json::from_slice(&std::fs::read(speedscope).unwrap()).unwrap();
    let exported: i64 = json["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["weights"].as_array().unwrap())
        .map(|w| w.as_i64().unwrap())
        .sum();
    assert_eq!(exported, total);
}

/// Every command the tracer saw on the connection is in the server's general log, in the
/// same order, and nothing else is (but the `Connect`). The log holds what the server ran:
/// no pings, no statement that failed to prepare, no close of a statement id it never gave
/// (mysql-connector closes one after the failed prepare; the tracer knows no text for it).
fn check_general_log(db: &servers::MariaDb, session: &Session) {
    let id = session.printed["session"].as_u64().unwrap();
    let logged: Vec<(String, String)> = db
        .session(id)
        .into_iter()
        .filter(|c| c.command != "Connect")
        .map(|c| (c.command, c.argument))
        .collect();
    let ran: Vec<&SqlRow> = session
        .rows
        .iter()
        .filter(|r| match r.operation.as_str() {
            "ping" => false,
            "prepare" => r.error_code.is_none(),
            "close" => !r.statement.is_empty(),
            _ => true,
        })
        .collect();
    let skipped: Vec<&SqlRow> = session
        .rows
        .iter()
        .filter(|r| r.operation == "close" && r.statement.is_empty())
        .collect();
    assert!(skipped.len() <= 1, "{skipped:?}");
    let commands: Vec<&str> = ran
        .iter()
        .map(|r| match r.operation.as_str() {
            "query" => "Query",
            "prepare" => "Prepare",
            "execute" => "Execute",
            "close" => "Close stmt",
            "reset_statement" => "Reset stmt",
            "quit" => "Quit",
            other => panic!("unexpected operation {other}"),
        })
        .collect();
    let logged_commands: Vec<&str> = logged.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(commands, logged_commands, "{}", session.printed["driver"]);
    for (row, (command, argument)) in ran.iter().zip(&logged) {
        match command.as_str() {
            "Query" | "Prepare" => assert_eq!(&row.statement, argument),
            "Execute" => assert!(fills(&row.statement, argument), "{row:?} {argument}"),
            _ => {}
        }
    }
}

// ---- PostgreSQL ----

/// What the tracer should show for a printed PostgreSQL query: a `query` row (simple
/// protocol) or an `execute` (extended), preceded by a `prepare` the first time a named
/// statement runs (psycopg prepares it in a batch of its own).
fn postgres_expected(query: &Value, named_seen: &mut Vec<String>) -> Vec<Expected> {
    let statement = str_of(&query["statement"]).unwrap();
    let row = |operation: &str, rows, error_code, error| Expected {
        operation: operation.into(),
        statement: statement.clone(),
        rows,
        error_code,
        error,
    };
    let done = row(
        if query["protocol"] == "simple" {
            "query"
        } else {
            "execute"
        },
        query["rows"].as_u64(),
        str_of(&query["error_code"]),
        str_of(&query["error"]),
    );
    match str_of(&query["prepared"]) {
        Some(name) if !name.is_empty() && !named_seen.contains(&name) => {
            named_seen.push(name);
            vec![row("prepare", None, None, None), done]
        }
        _ => vec![done],
    }
}

fn postgres_normalized(statement: &str) -> String {
    match statement {
        "CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name TEXT, qty INT)" => statement,
        "INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7)"
        | "INSERT INTO items VALUES (4, 'fig', 1)" => "INSERT INTO items VALUES (?, ?, ?)",
        "SELECT id, name FROM items WHERE qty > 2 ORDER BY id" => {
            "SELECT id, name FROM items WHERE qty > ? ORDER BY id"
        }
        "UPDATE items SET qty = qty + 1 WHERE id <= 2" => {
            "UPDATE items SET qty = qty + ? WHERE id <= ?"
        }
        "DELETE FROM items WHERE id = 4" => "DELETE FROM items WHERE id = ?",
        other => other,
    }
    .to_owned()
}

#[test]
fn postgres_simple_and_extended_statements_match_the_workload_and_the_server_log() {
    let db = servers::postgres();
    let both = trace_both("sql-postgres", "sql_postgres.py", db.port);
    for (traced, literals) in &both {
        assert_eq!(traced.sessions.len(), 2);
        for session in &traced.sessions {
            let mut named = Vec::new();
            let expected: Vec<Expected> = session
                .queries
                .iter()
                .flat_map(|q| postgres_expected(q, &mut named))
                .collect();
            let function = match session.printed["driver"].as_str() {
                Some("psycopg2") => "simple",
                _ => "extended",
            };
            check_session(
                traced,
                session,
                &expected,
                *literals,
                postgres_normalized,
                function,
            );
            if *literals {
                check_server_log(db, session);
            }
        }
        if !*literals {
            check_fingerprints(traced);
        }
        check_no_password(&traced.run);
    }
    check_same_fingerprints(&both);
}

/// The statements the server logged for the session are the tracer's `query` and
/// `execute` rows, with the same errors, and a named statement's first execution follows
/// its `prepare` row.
fn check_server_log(db: &servers::Postgres, session: &Session) {
    let backend = session.printed["session"].as_u64().unwrap();
    let logged = db.session(backend);
    let ran: Vec<&SqlRow> = session
        .rows
        .iter()
        .filter(|r| r.operation != "prepare")
        .collect();
    let shown = |rows: &[&SqlRow]| -> Vec<(String, Option<String>, bool)> {
        rows.iter()
            .map(|r| {
                (
                    r.statement.clone(),
                    r.error_code.clone(),
                    r.operation == "execute",
                )
            })
            .collect()
    };
    let logged_shown: Vec<(String, Option<String>, bool)> = logged
        .iter()
        .map(|l| (l.text.clone(), l.error_code.clone(), l.prepared.is_some()))
        .collect();
    assert_eq!(shown(&ran), logged_shown, "{}", session.printed["driver"]);
    let prepares: Vec<&str> = session
        .rows
        .iter()
        .filter(|r| r.operation == "prepare")
        .map(|r| r.statement.as_str())
        .collect();
    let mut named: Vec<&str> = logged
        .iter()
        .filter(|l| l.prepared.as_ref().is_some_and(|p| !p.is_empty()))
        .map(|l| l.text.as_str())
        .collect();
    named.dedup();
    assert_eq!(prepares, named);
}
