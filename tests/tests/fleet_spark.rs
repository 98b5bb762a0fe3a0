//! A fleet read by a distributed engine: three hosts run known SQL through sqlite3, their runs
//! are published into one fleet, and DuckDB (the embedded default) and Spark in local mode
//! answer "top SQL fingerprints by total time across hosts" with the same rows; the calls are
//! what each host issued, the durations the runs' own to the nanosecond.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use scalpels_tests::*;
use serde_json::Value;

/// Each host's statements (by sqlite_counts.py's names) and how many times it runs them.
const HOSTS: [(&str, &[(&str, u64)]); 3] = [
    ("node-a", &[("insert", 400), ("select", 60)]),
    (
        "node-b",
        &[("insert", 150), ("select", 250), ("update", 40)],
    ),
    ("node-c", &[("insert", 25), ("update", 300), ("delete", 5)]),
];

/// (host, fingerprint) -> (statement, calls, total latency in ns).
type PerHost = BTreeMap<(String, u64), (String, u64, i64)>;

/// Traces sqlite_counts.py as `host`; returns its run and the executions it printed per statement.
fn trace_host(runs: &Path, host: &str, counts: &[(&str, u64)]) -> (String, BTreeMap<String, u64>) {
    let counts: Vec<String> = counts.iter().map(|(n, c)| format!("{n}={c}")).collect();
    let script = workload("sqlite_counts.py");
    let mut args = vec![
        "--out",
        runs.to_str().unwrap(),
        "--host-label",
        host,
        "--tracers",
        "protocols",
        "--",
        python(),
        &script,
    ];
    args.extend(counts.iter().map(String::as_str));
    let output = trace(&args, Duration::from_secs(60));
    let run = run_dir(&output);
    let issued = printed_json(&output.stdout, None)
        .iter()
        .map(|v| {
            let statement = v["statement"].as_str().unwrap().to_owned();
            (statement, v["executions"].as_u64().unwrap())
        })
        .collect();
    (run.display().to_string(), issued)
}

/// What a run's own `sql.parquet` holds, per fingerprint.
fn run_sql(run: &Path, host: &str, into: &mut PerHost) {
    let sql = read_table(&run.join("sql.parquet"));
    let (fingerprints, statements) = (u64s(&sql, "fingerprint"), strings(&sql, "statement"));
    let latencies = optional_i64s(&sql, "latency");
    for i in 0..sql.num_rows() {
        let row = into
            .entry((host.to_owned(), fingerprints[i]))
            .or_insert_with(|| (statements[i].clone(), 0, 0));
        assert_eq!(row.0, statements[i], "one statement per fingerprint");
        row.1 += 1;
        row.2 += latencies[i].unwrap_or(0);
    }
}

/// The rows fleet_top_sql.py printed for `engine` and `question`.
fn answer(lines: &[Value], engine: &str, question: &str) -> Vec<Value> {
    let line = lines
        .iter()
        .find(|l| l["engine"] == engine && l["question"] == question)
        .unwrap_or_else(|| panic!("no {question} from {engine}: {lines:?}"));
    eprintln!(
        "{engine} answered {question} {}s after it started",
        line["seconds"]
    );
    line["rows"].as_array().unwrap().clone()
}

#[test]
fn duckdb_and_spark_give_the_same_top_sql_of_a_fleet() {
    let start = Instant::now();
    let out = out_dir("fleet-spark");
    let runs = out.join("runs");
    let mut published = vec![];
    let mut per_host = PerHost::new();
    for (host, counts) in HOSTS {
        let (run, issued) = trace_host(&runs, host, counts);
        run_sql(Path::new(&run), host, &mut per_host);
        // The run holds exactly what the workload issued: its statements, as many times.
        let traced: BTreeMap<String, u64> = per_host
            .iter()
            .filter(|((h, _), _)| h == host)
            .map(|(_, (statement, calls, _))| (statement.clone(), *calls))
            .collect();
        assert_eq!(traced, issued, "{host}");
        published.push(run);
    }
    let fleet = out.join("fleet");
    let mut publish = vec!["publish", "--to", fleet.to_str().unwrap()];
    publish.extend(published.iter().map(String::as_str));
    let output = trace(&publish, Duration::from_secs(30));
    assert!(output.status.success(), "{}", stderr(&output));

    let engines = Command::new(python())
        .arg(workload("fleet_top_sql.py"))
        .arg(&fleet)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    // Spark's JVM takes seconds to start; minutes mean it is stuck.
    let output = wait_with_limit(engines, Duration::from_secs(300));
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = printed_json(&output.stdout, None);

    let duckdb_per_host = answer(&lines, "duckdb", "per_host");
    assert_eq!(duckdb_per_host, answer(&lines, "spark", "per_host"));
    let duckdb_top = answer(&lines, "duckdb", "top");
    assert_eq!(duckdb_top, answer(&lines, "spark", "top"));

    // Per host, what each run's own file holds.
    let expected_per_host: Vec<Value> = per_host
        .iter()
        .map(|((host, fingerprint), (_, calls, total))| {
            serde_json::json!([host, fingerprint, calls, total])
        })
        .collect();
    assert_eq!(duckdb_per_host, expected_per_host);
    // Across hosts: the calls issued, the hosts that issued them, the sum of the runs' durations.
    let mut across = BTreeMap::<u64, (String, u64, i64, BTreeSet<String>)>::new();
    for ((host, fingerprint), (statement, calls, total)) in &per_host {
        let row = across
            .entry(*fingerprint)
            .or_insert_with(|| (statement.clone(), 0, 0, BTreeSet::new()));
        row.1 += calls;
        row.2 += total;
        row.3.insert(host.clone());
    }
    let mut expected_top: Vec<Value> = across
        .iter()
        .map(|(fingerprint, (statement, calls, total, hosts))| {
            serde_json::json!([fingerprint, statement, calls, total, hosts.len()])
        })
        .collect();
    expected_top.sort_by_key(|row| (-row[3].as_i64().unwrap(), row[0].as_u64().unwrap()));
    assert_eq!(duckdb_top, expected_top);
    let insert = expected_top
        .iter()
        .find(|row| row[1] == "INSERT INTO items (qty) VALUES (?)")
        .unwrap();
    assert_eq!(
        (&insert[2], &insert[4]),
        (&(400 + 150 + 25).into(), &3.into())
    );
    eprintln!("test took {:?}", start.elapsed());
    std::fs::remove_dir_all(&out).ok();
}
