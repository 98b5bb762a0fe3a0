//! The protocol tests' fixtures, without a tracer: the servers start, the workloads do what
//! they print, the servers' own logs agree with them, and no server outlives its test
//! binary, whether that binary exits or is killed.

use std::{
    collections::HashSet,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use scalpels_tests::{
    servers::{self, SQL_DATABASE, SQL_PASSWORD, SQL_USER},
    *,
};
use serde_json::Value;

fn run_workload(args: &[&str], limit: Duration) -> Vec<Value> {
    let output = wait_with_limit(
        Command::new(python())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("workload starts"),
        limit,
    );
    assert!(
        output.status.success(),
        "{args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    printed_json(&output.stdout, None)
}

fn of_event<'a>(printed: &'a [Value], event: &str) -> Vec<&'a Value> {
    printed.iter().filter(|v| v["event"] == event).collect()
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

#[test]
fn mariadb_logs_exactly_what_the_workload_sent_over_both_protocols() {
    let db = servers::mariadb();
    let port = db.port.to_string();
    let printed = run_workload(
        &[
            &workload("sql_mysql.py"),
            "127.0.0.1",
            &port,
            SQL_USER,
            SQL_PASSWORD,
            SQL_DATABASE,
        ],
        Duration::from_secs(60),
    );
    let queries = of_event(&printed, "query");
    assert_eq!(queries.len(), 15);
    let rows: Vec<Option<u64>> = queries.iter().map(|q| q["rows"].as_u64()).collect();
    assert_eq!(
        rows,
        [
            Some(0),
            Some(3),
            Some(1),
            Some(3),
            Some(2),
            Some(1),
            None,
            Some(1),
            Some(3),
            Some(0),
            Some(1),
            Some(1),
            Some(2),
            None,
            Some(1),
        ]
    );
    let sessions = of_event(&printed, "connected");
    assert_eq!(sessions.len(), 2);
    for session in sessions {
        let id = session["session"].as_u64().unwrap();
        let of_session: Vec<&&Value> = queries.iter().filter(|q| q["session"] == id).collect();
        let expected: Vec<(String, String)> =
            of_session.iter().flat_map(|q| general_log_of(q)).collect();
        // The driver's own set-up (SET NAMES, autocommit), then exactly the workload's.
        let logged: Vec<(String, String)> = db
            .session(id)
            .into_iter()
            .filter(|c| ["Query", "Prepare", "Execute"].contains(&c.command.as_str()))
            .map(|c| (c.command, c.argument))
            .collect();
        let (setup, workload) = logged.split_at(logged.len().saturating_sub(expected.len()));
        assert_eq!(workload, expected, "{}", session["driver"]);
        assert!(
            setup
                .iter()
                .all(|(c, a)| c == "Query" && a.starts_with("SET ")),
            "{setup:?}"
        );
    }

    let failed: Vec<(u32, String)> = queries
        .iter()
        .filter_map(|q| {
            Some((
                q["error_code"].as_str()?.parse().ok()?,
                str_of(&q["statement"])?,
            ))
        })
        .collect();
    assert_eq!(
        failed,
        [
            (1146, "SELECT * FROM no_such_table".to_owned()),
            (1146, "SELECT * FROM no_such_table WHERE id = ?".to_owned())
        ]
    );
    let logged_errors: Vec<(u32, String)> = db
        .logged_errors()
        .into_iter()
        .map(|e| (e.errno, e.statement))
        .collect();
    for failure in &failed {
        assert!(logged_errors.contains(failure), "{logged_errors:?}");
    }
}

/// What MariaDB's general log shows for one printed query: a `Query`, or for the binary
/// protocol a `Prepare` (when it prepared) and an `Execute` with the parameters filled in
/// (nothing when the statement failed to prepare).
fn general_log_of(query: &Value) -> Vec<(String, String)> {
    let statement = str_of(&query["statement"]).unwrap();
    let Some(params) = query["params"].as_array() else {
        return vec![("Query".into(), statement)];
    };
    if query["error_code"].is_string() {
        return Vec::new();
    }
    let mut values = params.iter().map(|p| match p {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    });
    let expanded = statement
        .split('?')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_owned()
            } else {
                values.next().unwrap() + part
            }
        })
        .collect();
    let mut entries = Vec::new();
    if query["prepared"] == true {
        entries.push(("Prepare".into(), statement));
    }
    entries.push(("Execute".into(), expanded));
    entries
}

#[test]
fn postgres_logs_exactly_what_the_psycopg_workload_sent_over_both_protocols() {
    let db = servers::postgres();
    let port = db.port.to_string();
    let printed = run_workload(
        &[
            &workload("sql_postgres.py"),
            "127.0.0.1",
            &port,
            SQL_USER,
            SQL_PASSWORD,
            SQL_DATABASE,
        ],
        Duration::from_secs(60),
    );
    let connected = of_event(&printed, "connected");
    assert_eq!(connected.len(), 2);
    let queries = of_event(&printed, "query");
    assert_eq!(queries.len(), 14);
    for session in connected {
        let backend = session["session"].as_u64().unwrap();
        let expected: Vec<servers::LoggedStatement> = queries
            .iter()
            .filter(|q| q["session"] == backend)
            .map(|q| servers::LoggedStatement {
                text: str_of(&q["statement"]).unwrap(),
                prepared: str_of(&q["prepared"]),
                parameters: q["params"].as_array().map(|params| {
                    params
                        .iter()
                        .enumerate()
                        .map(|(i, p)| format!("${} = '{}'", i + 1, p.as_str().unwrap()))
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
                error_code: str_of(&q["error_code"]),
            })
            .collect();
        assert_eq!(db.session(backend), expected, "{}", session["driver"]);
    }
    let extended: Vec<&&Value> = queries
        .iter()
        .filter(|q| q["protocol"] == "extended")
        .collect();
    assert_eq!(extended.len(), 6);
    let prepared: Vec<String> = extended
        .iter()
        .filter_map(|q| str_of(&q["prepared"]).filter(|p| !p.is_empty()))
        .collect();
    assert_eq!(prepared.len(), 2, "one named statement executed twice");
    assert_eq!(prepared[0], prepared[1]);
    let errors: Vec<String> = queries
        .iter()
        .filter_map(|q| str_of(&q["error_code"]))
        .collect();
    assert_eq!(errors, ["42P01", "23505"]);
}

#[test]
fn rabbitmq_carries_the_oslo_messaging_calls_and_casts() {
    let broker = servers::rabbitmq();
    let printed = run_workload(
        &[
            &workload("rpc_oslo.py"),
            &broker.transport_url(),
            "--calls",
            "4",
            "--casts",
            "3",
        ],
        Duration::from_secs(90),
    );
    let calls = of_event(&printed, "call");
    let casts = of_event(&printed, "cast");
    let handled = of_event(&printed, "handled");
    assert_eq!((calls.len(), casts.len()), (4, 3));
    let handled_kinds: Vec<(String, u64)> = handled
        .iter()
        .map(|h| (str_of(&h["kind"]).unwrap(), h["seq"].as_u64().unwrap()))
        .collect();
    for (kind, n) in [("call", 4), ("cast", 3)] {
        let seqs: HashSet<u64> = handled_kinds
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seqs, (0..n).collect(), "{kind}s handled");
    }
    let sleep_ms = of_event(&printed, "config")[0]["call_sleep_ms"]
        .as_f64()
        .unwrap();
    for call in &calls {
        assert!(call["latency_ms"].as_f64().unwrap() >= sleep_ms, "{call}");
    }
    let (client, server) = (calls[0]["pid"].clone(), handled[0]["pid"].clone());
    assert_ne!(client, server, "client and server are two processes");
    // The broker saw the workload's connections (client: publisher and reply listener;
    // server: listener and reply publisher).
    let log = std::fs::read_to_string(&broker.log).unwrap();
    let authenticated = log
        .lines()
        .filter(|l| l.contains("user 'guest' authenticated"))
        .count();
    assert!(authenticated >= 2, "{authenticated} connections in {log}");
}

#[test]
fn http_pair_serves_what_the_client_asked() {
    let printed = run_workload(&[&workload("http_pair.py")], Duration::from_secs(30));
    let shown = |event: &str| -> Vec<(String, String, u64, u64)> {
        of_event(&printed, event)
            .iter()
            .map(|r| {
                (
                    str_of(&r["method"]).unwrap(),
                    str_of(&r["path"]).unwrap(),
                    r["status"].as_u64().unwrap(),
                    r["response_body_bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let requests = shown("request");
    let expected = [
        ("GET", "/hello", 200, 20),
        ("GET", "/missing", 404, 13),
        ("POST", "/echo", 200, 23),
        ("GET", "/hello?n=2", 200, 20),
        ("GET", "/hello", 200, 20),
        ("GET", "/missing", 404, 13),
    ]
    .map(|(m, p, s, b)| (m.to_owned(), p.to_owned(), s, b));
    assert_eq!(requests, expected);
    // Each connection's requests are served in order; connections may interleave.
    let mut served = shown("served");
    served.sort();
    let mut sorted = expected.to_vec();
    sorted.sort();
    assert_eq!(served, sorted);
    let ports: HashSet<u64> = of_event(&printed, "request")
        .iter()
        .map(|r| r["local_port"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ports.len(),
        2,
        "keep-alive: two connections for six requests"
    );
}

#[test]
fn sqlite_runs_what_the_workload_printed() {
    let printed = run_workload(
        &[&workload("sqlite_queries.py"), "--trace-callback"],
        Duration::from_secs(30),
    );
    let loaded = &of_event(&printed, "loaded")[0];
    assert!(
        Path::new(loaded["libsqlite3"].as_str().unwrap()).exists(),
        "{loaded}"
    );
    let queries = of_event(&printed, "query");
    assert_eq!(queries.len(), 7);
    // libsqlite3's own trace: one entry per execution of each statement that prepared.
    let executed: Vec<String> = of_event(&printed, "executed")
        .iter()
        .map(|e| str_of(&e["sql"]).unwrap())
        .collect();
    let executions: u64 = queries
        .iter()
        .filter(|q| q["error_code"].is_null())
        .map(|q| q["executions"].as_u64().unwrap())
        .sum();
    assert_eq!(executed.len() as u64, executions, "{executed:#?}");
    assert_eq!(executed[1], "INSERT INTO items VALUES (1, 'apple', 3)");
    assert!(!executed.iter().any(|e| e.contains("no_such_table")));
    let cached: Vec<bool> = queries
        .iter()
        .map(|q| q["cached"].as_bool().unwrap())
        .collect();
    assert_eq!(cached.iter().filter(|c| **c).count(), 1);
}

/// Run by the lifetime tests below as a child test binary (SERVERS_PROBE set): starts
/// every server, prints `ready`, then exits or hangs as told.
#[test]
#[ignore = "a child process of the lifetime tests"]
fn servers_probe() {
    let Ok(mode) = std::env::var("SERVERS_PROBE") else {
        return;
    };
    let starts = [
        thread::spawn(|| servers::mariadb().pid),
        thread::spawn(|| servers::postgres().pid),
        thread::spawn(|| servers::rabbitmq().pid),
    ];
    for start in starts {
        start.join().expect("server started");
    }
    println!("ready");
    if mode == "hang" {
        thread::sleep(Duration::from_secs(600));
    }
}

/// Starts the probe, waits for its servers, and returns it with every process below it.
fn probe(mode: &str) -> (std::process::Child, Vec<u32>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "servers_probe", "--ignored", "--nocapture"])
        .env("SERVERS_PROBE", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.by_ref().map_while(Result::ok).any(|l| l == "ready");
    assert!(ready, "the probe's servers did not start");
    // Keeps reading, so the probe's last words do not fail on a closed pipe.
    thread::spawn(move || lines.for_each(drop));
    let below = descendants(child.id());
    assert!(below.len() >= 4, "servers of the probe: {below:?}");
    (child, below)
}

fn descendants(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            Some((pid, ppid.parse().ok()?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

fn assert_all_gone(pids: &[u32], within: Duration) {
    let start = Instant::now();
    while pids.iter().any(|&p| alive(p)) && start.elapsed() < within {
        thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "still running after {within:?}: {left:?}");
}

fn probe_dirs(probe: u32) -> Vec<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("scalpels-servers-{probe}-")))
        })
        .collect()
}

#[test]
fn servers_stop_and_are_removed_when_the_test_binary_exits() {
    let (child, below) = probe("exit");
    let pid = child.id();
    let output = wait_with_limit(child, Duration::from_secs(30));
    assert!(output.status.success(), "{}", output.status);
    assert_all_gone(&below, Duration::from_secs(5));
    assert_eq!(probe_dirs(pid), Vec::<PathBuf>::new());
}

#[test]
fn servers_stop_when_the_test_binary_is_killed() {
    let (mut child, below) = probe("hang");
    kill(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    assert_all_gone(&below, Duration::from_secs(15));
    // What a killed binary left is removed by the next one that starts a server.
    assert!(!probe_dirs(child.id()).is_empty());
    servers::remove_leftovers();
    assert_eq!(probe_dirs(child.id()), Vec::<PathBuf>::new());
}
