//! The sqlite probes of the protocols tracer, traced for real: Python's stdlib sqlite3 module
//! running known statements (one failing at step, one at prepare), asserted row by row in
//! `sql.parquet`: statement (normalized), rows, error code and message, latency, and the
//! Python line that ran each one (with the python tracer on).

use std::{collections::HashMap, path::Path, time::Duration};

use arrow::array::{Array as _, RecordBatch};
use scalpels_tests::*;

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

/// stack_id -> its innermost frame's (file, line), from `python_stacks.parquet`.
fn innermost_frames(run: &Path) -> HashMap<u64, (String, u64)> {
    let batch = read_table(&run.join("python_stacks.parquet"));
    let (ids, levels) = (u64s(&batch, "stack_id"), u64s(&batch, "level"));
    let (files, lines) = (strings(&batch, "file"), u64s(&batch, "line"));
    (0..batch.num_rows())
        .filter(|&i| levels[i] == 0)
        .map(|i| (ids[i], (files[i].clone(), lines[i])))
        .collect()
}

/// The 1-based number of the first line of the workload that contains `marker`.
fn workload_line(marker: &str) -> u64 {
    let source = std::fs::read_to_string(workload("sqlite_queries.py")).unwrap();
    let index = source
        .lines()
        .position(|line| line.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in the workload"));
    index as u64 + 1
}

#[test]
fn stdlib_sqlite3_statements_rows_and_errors() {
    let out = out_dir("protocols-sqlite");
    let go = out.join("go");
    let db = out.join("items.db");
    let _ = std::fs::remove_file(&db);
    let workload_proc = start_python(&[
        &workload("sqlite_queries.py"),
        go.to_str().unwrap(),
        db.to_str().unwrap(),
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
    release_when_attached(&out, &go);
    let workload_out = workload_proc.output();
    assert_eq!(printed(&workload_out.stdout, "pid"), [u64::from(pid)]);
    assert!(String::from_utf8_lossy(&workload_out.stdout).contains("done"));
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
    let expected = [
        row(
            "execute",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)",
            Some(0),
            "",
            "",
        ),
        // executemany: one statement, three executions of one row each.
        row("execute", insert, Some(1), "", ""),
        row("execute", insert, Some(1), "", ""),
        row("execute", insert, Some(1), "", ""),
        row(
            "execute",
            "SELECT id, name FROM items WHERE price > ? ORDER BY id",
            Some(2),
            "",
            "",
        ),
        row(
            "execute",
            "UPDATE items SET price = price * ? WHERE id IN (?)",
            Some(2),
            "",
            "",
        ),
        row(
            "execute",
            insert,
            None,
            "SQLITE_CONSTRAINT",
            "UNIQUE constraint failed: items.id",
        ),
        row(
            "prepare",
            "SELECT * FROM missing_table",
            None,
            "SQLITE_ERROR",
            "no such table: missing_table",
        ),
        // fetchone: the statement is reset after the one row the program took.
        row("execute", "SELECT count(*) FROM items", Some(1), "", ""),
        row("execute", "DELETE FROM items WHERE id = ?", Some(1), "", ""),
    ];
    assert_eq!(found, expected);
    // Where in the workload each one was run.
    let markers = [
        "CREATE TABLE",
        "cur.executemany(",
        "cur.executemany(",
        "cur.executemany(",
        "WHERE price > ?",
        "UPDATE items",
        "'dup'",
        "missing_table\")",
        "count(*)",
        "DELETE FROM",
    ];
    let frames = innermost_frames(&run);
    let stack_ids = sql.column_by_name("python_stack_id").unwrap();
    let stack_values = u64s(&sql, "python_stack_id");
    for (&i, marker) in mine.iter().zip(markers) {
        assert!(!stack_ids.is_null(i), "{marker}: no Python stack");
        let (file, line) = &frames[&stack_values[i]];
        assert!(file.ends_with("sqlite_queries.py"), "{marker}: {file}");
        assert_eq!(*line, workload_line(marker), "{marker}");
    }
    let db_systems = strings(&sql, "db_system");
    let conn_ids = sql.column_by_name("conn_id").unwrap();
    let latencies = i64s(&sql, "latency");
    let times = i64s(&sql, "time");
    let complete = bools(&sql, "complete");
    let tids = u64s(&sql, "tid");
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
    }
    assert!(mine.windows(2).all(|w| times[w[0]] <= times[w[1]]));
    // The same statement gets the same fingerprint whatever its literals.
    let fingerprints = u64s(&sql, "fingerprint");
    assert_eq!(fingerprints[mine[1]], fingerprints[mine[6]]);
    assert_ne!(fingerprints[mine[1]], fingerprints[mine[0]]);
    let manifest = manifest(&run);
    let tracers = manifest["tracers"].as_array().unwrap();
    let protocols = tracers.iter().find(|t| t["name"] == "protocols").unwrap();
    assert_eq!(protocols["drops"]["sqlite_events_dropped"], 0);
    assert_eq!(protocols["drops"]["sqlite_map_full"], 0);
}
