//! examples/analysis.ipynb runs top to bottom (jupyter nbconvert --execute) on a run of a
//! Python workload traced with every tracer, and shows what it promises: the latency table and
//! plot, the timeline, the top SQL statements, and both flame graphs.

use std::{collections::HashMap, process::Command, time::Duration};

use scalpels_tests::*;

/// Text and kinds of data every code cell printed or displayed, and the errors it raised.
struct CellOutputs {
    text: String,
    data: Vec<String>,
    errors: Vec<String>,
}

fn outputs(notebook: &serde_json::Value) -> Vec<CellOutputs> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Array(lines) => lines.iter().filter_map(|l| l.as_str()).collect(),
        other => other.as_str().unwrap_or_default().to_owned(),
    };
    notebook["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .map(|cell| {
            let mut out = CellOutputs {
                text: String::new(),
                data: Vec::new(),
                errors: Vec::new(),
            };
            for output in cell["outputs"].as_array().expect("outputs") {
                match output["output_type"].as_str() {
                    Some("stream") => out.text += &text(&output["text"]),
                    Some("error") => out
                        .errors
                        .push(format!("{}: {}", output["ename"], output["evalue"])),
                    _ => {
                        out.text += &text(&output["data"]["text/plain"]);
                        out.data.extend(
                            output["data"]
                                .as_object()
                                .into_iter()
                                .flat_map(|d| d.keys().cloned()),
                        );
                    }
                }
            }
            out
        })
        .collect()
}

/// The system call with the largest total latency in the run.
fn costliest_syscall(run: &std::path::Path) -> String {
    let calls = read_table(&run.join("syscalls.parquet"));
    let mut totals: HashMap<String, i64> = HashMap::new();
    for (name, total) in strings(&calls, "syscall")
        .into_iter()
        .zip(i64s(&calls, "total_latency"))
    {
        *totals.entry(name).or_default() += total;
    }
    totals
        .into_iter()
        .max_by_key(|t| t.1)
        .expect("system calls")
        .0
}

#[test]
fn the_analysis_notebook_runs_on_a_fresh_run() {
    let out = out_dir("notebook");
    // The hot functions, then a program running one SQL statement 40 times (sqlite).
    let sql = "import sqlite3\n\
               db = sqlite3.connect(':memory:')\n\
               for _ in range(40):\n    db.execute('SELECT count(*) FROM sqlite_master').fetchone()\n";
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "\"$0\" \"$1\" 2 && exec \"$0\" -c \"$2\"",
            python(),
            &workload("hot_functions.py"),
            sql,
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let run = run.canonicalize().unwrap();
    let executed = out.join("analysis.out.ipynb");
    let notebook = workspace().join("examples/analysis.ipynb");
    let nbconvert = Command::new(python())
        .args(["-m", "nbconvert", "--to", "notebook", "--execute"])
        .args(["--ExecutePreprocessor.timeout=120", "--output-dir"])
        .arg(&out)
        .args(["--output", "analysis.out.ipynb"])
        .arg(&notebook)
        .env("SCALPELS_RUN", &run)
        .env("SCALPELS_TRACE", scalpels_trace())
        .output()
        .expect("python3 -m nbconvert runs");
    assert!(
        nbconvert.status.success(),
        "the notebook failed:\n{}",
        String::from_utf8_lossy(&nbconvert.stderr)
    );
    let executed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&executed).unwrap()).unwrap();
    let cells = outputs(&executed);
    for (i, cell) in cells.iter().enumerate() {
        assert!(cell.errors.is_empty(), "code cell {i}: {:?}", cell.errors);
    }
    let all_text: String = cells.iter().map(|c| c.text.as_str()).collect();
    let data: Vec<&str> = cells
        .iter()
        .flat_map(|c| &c.data)
        .map(String::as_str)
        .collect();

    // The run it read, and its tracers.
    assert!(all_text.contains(&format!(
        "{}: complete",
        manifest(&run)["run_id"].as_str().unwrap()
    )));
    assert!(all_text.contains("python     attached"), "{all_text}");
    // The costliest system call by total time heads the latency table.
    let latency = cells
        .iter()
        .find(|c| c.text.contains("p99 ≤"))
        .unwrap_or_else(|| panic!("no latency table in:\n{all_text}"));
    let first_row = latency.text.lines().nth(1).unwrap_or_default();
    assert!(
        first_row
            .trim_start()
            .starts_with(&format!("{} ", costliest_syscall(&run))),
        "{}",
        latency.text
    );
    // Latency plot, timeline and SQL statements, then both flame graphs.
    assert_eq!(
        data.iter().filter(|d| **d == "image/png").count(),
        3,
        "{data:?}"
    );
    assert_eq!(
        data.iter().filter(|d| **d == "image/svg+xml").count(),
        2,
        "{data:?}"
    );
    assert!(run.join("python-on-cpu.svg").exists());
    assert!(run.join("python-off-cpu.svg").exists());
    // The statement, with its 40 executions, heads the SQL table.
    let statements = cells
        .iter()
        .find(|c| c.text.contains("total_ms"))
        .unwrap_or_else(|| panic!("no SQL table in:\n{all_text}"));
    let row = statements
        .text
        .lines()
        .find(|l| l.contains("SELECT count(*) FROM sqlite_master"))
        .unwrap_or_else(|| panic!("{}", statements.text));
    assert!(
        row.contains("sqlite") && row.split_whitespace().any(|w| w == "40"),
        "{row}"
    );
    std::fs::remove_dir_all(&out).ok();
}
