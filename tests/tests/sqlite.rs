//! The sqlite probes of the protocols tracer, traced for real: Python's stdlib sqlite3 module
//! running the known statements of `sqlite_queries.py` (one failing at its step, one at
//! prepare), asserted row by row in `sql.parquet` (normalized statement, rows, error code and
//! message, latency, the Python function that ran it), and checked against what the workload
//! printed and libsqlite3's own trace of the executions.

use std::{collections::HashMap, path::Path, time::Duration};

use arrow::array::{Array as _, RecordBatch};
use scalpels_tests::*;
use serde_json::Value;

#[derive(Debug, PartialEq)]
struct Row {
    operation: String,
    statement: String,
    rows: Option<u64>,
    error_code: String,
    error: String,
}

fn row(operation: &str, statement: &str, rows: Option<u64>, code: &str, error: &str) -> Row {
    Row {
        operation: operation.into(),
        statement: statement.into(),
        rows,
        error_code: code.into(),
        error: error.into(),
    }
}

/// stack_id -> its innermost frame's (function, file), from `python_stacks.parquet`.
fn innermost_frames(run: &Path) -> HashMap<u64, (String, String)> {
    let batch = read_table(&run.join("python_stacks.parquet"));
    let (ids, levels) = (u64s(&batch, "stack_id"), u64s(&batch, "level"));
    let (functions, files) = (strings(&batch, "function"), strings(&batch, "file"));
    (0..batch.num_rows())
        .filter(|&i| levels[i] == 0)
        .map(|i| (ids[i], (functions[i].clone(), files[i].clone())))
        .collect()
}

#[test]
fn stdlib_sqlite3_statements_rows_and_errors() {
    let out = out_dir("protocols-sqlite");
    let go = out.join("go");
    let workload_proc = start_python(&[
        &workload("sqlite_queries.py"),
        "--go",
        go.to_str().unwrap(),
        "--trace-callback",
    ]);
    let pid = workload_proc.pid();
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "protocols,python",
        "--pid",
        &pid.to_string(),
        "--duration",
        "60s",
    ]);
    // The python tracer looks for CPython in its new targets once attached (every 10 ms):
    // let it find this one before the first statement, whose stack is asserted too.
    release_when_attached(&out, &out.join("attached"));
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&go, b"go").unwrap();
    let workload_out = workload_proc.output();
    let printed: Vec<Value> = String::from_utf8_lossy(&workload_out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let of_event =
        |event: &str| -> Vec<&Value> { printed.iter().filter(|v| v["event"] == event).collect() };
    assert_eq!(
        of_event("done").len(),
        1,
        "the workload finished: {printed:?}"
    );
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let run = run_dir(&output);

    let sql: RecordBatch = read_table(&run.join("sql.parquet"));
    let pids = u64s(&sql, "pid");
    let mine: Vec<usize> = (0..sql.num_rows())
        .filter(|&i| pids[i] == u64::from(pid))
        .collect();
    let (operations, statements) = (strings(&sql, "operation"), strings(&sql, "statement"));
    let (codes, errors) = (strings(&sql, "error_code"), strings(&sql, "error"));
    let rows = optional_u64s(&sql, "rows");
    let found: Vec<Row> = mine
        .iter()
        .map(|&i| Row {
            operation: operations[i].clone(),
            statement: statements[i].clone(),
            rows: rows[i],
            error_code: codes[i].clone(),
            error: errors[i].clone(),
        })
        .collect();
    let insert = "INSERT INTO items VALUES (?, ?, ?)";
    let select = "SELECT id, name FROM items WHERE qty > ?";
    let duplicate = "UNIQUE constraint failed: items.id";
    let expected = [
        // DDL returns no rows and changes none.
        row(
            "execute",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)",
            Some(0),
            "",
            "",
        ),
        // executemany: one prepared statement, three executions of one row each.
        row("execute", insert, Some(1), "", ""),
        row("execute", insert, Some(1), "", ""),
        row("execute", insert, Some(1), "", ""),
        row("execute", select, Some(2), "", ""),
        row(
            "execute",
            "UPDATE items SET qty = qty + ? WHERE id <= ?",
            Some(2),
            "",
            "",
        ),
        row("execute", insert, None, "SQLITE_CONSTRAINT", duplicate),
        row(
            "prepare",
            "SELECT * FROM no_such_table",
            None,
            "SQLITE_ERROR",
            "no such table: no_such_table",
        ),
        row("execute", select, Some(3), "", ""),
        row("execute", "DELETE FROM items WHERE id = ?", Some(1), "", ""),
    ];
    assert_eq!(found, expected);

    // What the workload saw: the same errors (Python names the extended code).
    for query in of_event("query") {
        let Some(name) = query["error_code"].as_str() else {
            continue;
        };
        let ours = found
            .iter()
            .find(|r| Some(r.error.as_str()) == query["error"].as_str())
            .unwrap_or_else(|| panic!("no row with the error of {query}"));
        assert!(name.starts_with(&ours.error_code), "{name} vs {ours:?}");
    }
    // libsqlite3's own trace: one line per execution, the failing step's included.
    let executions = found.iter().filter(|r| r.operation == "execute").count();
    assert_eq!(executions, of_event("executed").len());

    let db_systems = strings(&sql, "db_system");
    let conn_ids = sql.column_by_name("conn_id").unwrap();
    let latencies = i64s(&sql, "latency");
    let times = i64s(&sql, "time");
    let complete = bools(&sql, "complete");
    let tids = u64s(&sql, "tid");
    let frames = innermost_frames(&run);
    let stack_ids = sql.column_by_name("python_stack_id").unwrap();
    let stack_values = u64s(&sql, "python_stack_id");
    for &i in &mine {
        assert_eq!(db_systems[i], "sqlite");
        assert!(conn_ids.is_null(i), "sqlite has no connection");
        assert!(
            latencies[i] > 0 && latencies[i] < 1_000_000_000,
            "{}",
            latencies[i]
        );
        assert!(complete[i]);
        assert_eq!(tids[i], u64::from(pid), "the main thread ran them");
        assert!(!stack_ids.is_null(i), "row {i} has no Python stack");
    }
    // The python tracer names code objects from the process's memory, which the workload may
    // have left (exited) first: the frames it could name are all the workload's run().
    let named: Vec<&(String, String)> = mine
        .iter()
        .map(|&i| &frames[&stack_values[i]])
        .filter(|(function, _)| function != "<unknown>")
        .collect();
    assert!(!named.is_empty());
    for (function, file) in named {
        assert_eq!(function, "run", "{file}");
        assert!(file.ends_with("sqlite_queries.py"), "{file}");
    }
    assert!(mine.windows(2).all(|w| times[w[0]] <= times[w[1]]));
    // The same statement has the same fingerprint whatever its literals.
    let fingerprints = u64s(&sql, "fingerprint");
    assert_eq!(fingerprints[mine[1]], fingerprints[mine[6]]);
    assert_ne!(fingerprints[mine[1]], fingerprints[mine[0]]);
    let manifest = manifest(&run);
    let tracers = manifest["tracers"].as_array().unwrap();
    let protocols = tracers.iter().find(|t| t["name"] == "protocols").unwrap();
    assert_eq!(protocols["drops"]["sqlite_events_dropped"], 0);
    assert_eq!(protocols["drops"]["sqlite_map_full"], 0);
}

/// A short program that loads SQLite, runs its statements and exits between two looks at its
/// mappings: the probes are on the loader's libsqlite3 before it starts, and the kernel finds
/// SQLite's code at the program's first call, so every statement is a row.
#[test]
fn a_short_program_is_traced_from_its_first_statement() {
    let out = out_dir("protocols-sqlite-short");
    let script = "import sqlite3\n\
                  db = sqlite3.connect(':memory:')\n\
                  db.execute('CREATE TABLE t (n INTEGER)')\n\
                  for n in range(321):\n    db.execute('INSERT INTO t VALUES (?)', (n,))\n\
                  print(db.execute('SELECT count(*) FROM t').fetchone()[0])\n";
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "protocols",
            "--",
            python(),
            "-c",
            script,
        ],
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().next(),
        Some("321")
    );
    let sql = read_table(&run_dir(&output).join("sql.parquet"));
    let statements = strings(&sql, "statement");
    let count = |wanted: &str| statements.iter().filter(|s| *s == wanted).count();
    assert_eq!(count("INSERT INTO t VALUES (?)"), 321, "{statements:?}");
    assert_eq!(count("CREATE TABLE t (n INTEGER)"), 1, "{statements:?}");
    assert_eq!(count("SELECT count(*) FROM t"), 1, "{statements:?}");
}
