//! Test harness: runs the real `scalpels-trace` (path in `SCALPELS_TRACE`, set by
//! `cargo xtask test`) against real workloads, and reads back what it wrote.

pub mod fleet;
mod loop_fs;
pub mod pprof;
pub mod pythons;
pub mod servers;

pub use loop_fs::LoopFs;

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use arrow::{
    array::{Array as _, AsArray as _, RecordBatch, RecordBatchReader as _},
    compute::{cast, concat_batches},
    datatypes::{DataType, Float64Type, Int64Type, UInt64Type},
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

/// The scalpels-trace binary under test.
pub fn scalpels_trace() -> PathBuf {
    std::env::var_os("SCALPELS_TRACE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/scalpels-trace"))
}

/// The tests' Python: the virtual environment `cargo xtask setup --tests` makes from Debian's
/// interpreter, with the modules the workloads use (`SCALPELS_PYTHON` names another).
pub fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let python = std::env::var_os("SCALPELS_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target/python-venv/bin/python3"));
        assert!(
            python.exists(),
            "{} is missing: run `cargo xtask setup --tests` (or `cargo xtask test`)",
            python.display()
        );
        python.display().to_string()
    })
}

pub fn workload(name: &str) -> String {
    workspace()
        .join("tests/workloads")
        .join(name)
        .display()
        .to_string()
}

/// A fresh, empty output directory for one test.
pub fn out_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scalpels-test-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test output dir");
    dir
}

/// A self-signed certificate for 127.0.0.1 and its key, made with `openssl` in `dir`: what the
/// TLS tests' servers present and their clients trust.
pub fn tls_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (cargo xtask setup --tests installs it)");
    assert!(
        made.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}

/// Runs scalpels-trace to completion, killing it after `limit`.
pub fn trace(args: &[&str], limit: Duration) -> Output {
    let child = spawn_trace(args);
    wait_with_limit(child, limit)
}

/// Waits for a target started with a piped stdout to print its first line, `ready`.
pub fn wait_ready(target: &mut Child) {
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(target.stdout.as_mut().expect("a piped stdout")),
        &mut ready,
    )
    .expect("the target's stdout reads");
    assert_eq!(ready.trim(), "ready");
}

pub fn spawn_trace(args: &[&str]) -> Child {
    Command::new(scalpels_trace())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scalpels-trace starts (build it with cargo xtask build)")
}

pub fn wait_with_limit(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            child.kill().ok();
            panic!("scalpels-trace did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// The run directory printed as `run: DIR`, after asserting the run succeeded.
pub fn run_dir(output: &Output) -> PathBuf {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scalpels-trace failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("run: "))
        .unwrap_or_else(|| panic!("no run line in:\n{stdout}"));
    PathBuf::from(line)
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn manifest(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// What an analysis command (`report`, `diff`, ... with `--format json`) printed, which must
/// have succeeded.
pub fn analysis_json(args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(scalpels_trace())
        .args(args)
        .output()
        .expect("scalpels-trace runs");
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("the output is JSON")
}

/// The rows of the entry keyed `key` in the list `list` of an analysis's JSON (a report's
/// `sections`, a diff's `dimensions`).
pub fn keyed_rows<'a>(
    json: &'a serde_json::Value,
    list: &str,
    key: &str,
) -> &'a Vec<serde_json::Value> {
    json[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {json}"))
        .iter()
        .find(|entry| entry["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {list}"))["rows"]
        .as_array()
        .expect("rows")
}

/// All rows of a Parquet file (or of every part file in a directory) as one batch.
pub fn read_table(path: &Path) -> RecordBatch {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .expect("read parts dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut batches = Vec::new();
    let mut schema = None;
    for file in files {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&file).expect("open parquet"))
                .expect("valid parquet")
                .build()
                .expect("reader");
        schema = Some(reader.schema());
        batches.extend(reader.map(|b| b.expect("batch")));
    }
    concat_batches(&schema.expect("at least one file"), &batches).expect("concat")
}

/// A column as strings (dictionary and string columns).
pub fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let array = cast(
        batch
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}")),
        &DataType::Utf8,
    )
    .expect("cast to utf8");
    array
        .as_string::<i32>()
        .iter()
        .map(|s| s.unwrap_or_default().to_owned())
        .collect()
}

/// A column as u64 (unsigned integers).
pub fn u64s(batch: &RecordBatch, column: &str) -> Vec<u64> {
    let array = cast(
        batch
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}")),
        &DataType::UInt64,
    )
    .expect("cast to u64");
    array.as_primitive::<UInt64Type>().values().to_vec()
}

/// A column as u64, nulls as `None`.
pub fn optional_u64s(batch: &RecordBatch, column: &str) -> Vec<Option<u64>> {
    let array = cast(
        batch
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}")),
        &DataType::UInt64,
    )
    .expect("cast to u64");
    array.as_primitive::<UInt64Type>().iter().collect()
}

/// A column as strings, nulls as `None`.
pub fn optional_strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = cast(
        batch
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}")),
        &DataType::Utf8,
    )
    .expect("cast to utf8");
    array
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

/// A column as i64 (as [`i64s`] reads it), nulls as `None`.
pub fn optional_i64s(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    let col = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column {column}"));
    i64s(batch, column)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (!col.is_null(i)).then_some(v))
        .collect()
}

/// A column as f64 (floating point).
pub fn f64s(batch: &RecordBatch, column: &str) -> Vec<f64> {
    let array = cast(
        batch
            .column_by_name(column)
            .unwrap_or_else(|| panic!("no column {column}")),
        &DataType::Float64,
    )
    .expect("cast to f64");
    array.as_primitive::<Float64Type>().values().to_vec()
}

/// A column as i64 (signed integers, timestamps and durations in ns).
pub fn i64s(batch: &RecordBatch, column: &str) -> Vec<i64> {
    let col = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column {column}"));
    let array = match col.data_type() {
        DataType::Timestamp(..) | DataType::Duration(_) => {
            let data = col
                .to_data()
                .into_builder()
                .data_type(DataType::Int64)
                .build()
                .expect("reinterpret");
            arrow::array::make_array(data)
        }
        _ => cast(col, &DataType::Int64).expect("cast to i64"),
    };
    array.as_primitive::<Int64Type>().values().to_vec()
}

/// Per-syscall (calls, errors) of the rows matching `keep(pid, tid)` in `syscalls.parquet`.
pub fn syscall_totals(run: &Path, keep: impl Fn(u64, u64) -> bool) -> HashMap<String, (u64, u64)> {
    let batch = read_table(&run.join("syscalls.parquet"));
    let (pids, tids) = (u64s(&batch, "pid"), u64s(&batch, "tid"));
    let (names, calls, errors) = (
        strings(&batch, "syscall"),
        u64s(&batch, "calls"),
        u64s(&batch, "errors"),
    );
    let mut totals: HashMap<String, (u64, u64)> = HashMap::new();
    for i in 0..batch.num_rows() {
        if keep(pids[i], tids[i]) {
            let t = totals.entry(names[i].clone()).or_default();
            t.0 += calls[i];
            t.1 += errors[i];
        }
    }
    totals
}

/// Values printed by a workload as `key=value` lines.
pub fn printed(stdout: &[u8], key: &str) -> Vec<u64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// The lines a workload printed as JSON objects (the protocol workloads report each step
/// that way), optionally only those whose `"event"` is `event`.
pub fn printed_json(stdout: &[u8], event: Option<&str>) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.is_object() && event.is_none_or(|e| v["event"] == e))
        .collect()
}

/// A process killed when the test ends, even when it panics.
pub struct Reaped(pub Child);

impl Reaped {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the process to exit by itself and returns its output.
    pub fn output(self) -> Output {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the child is moved out once.
        let child = unsafe { std::ptr::read(&this.0) };
        child.wait_with_output().expect("workload output")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// Sends `signal` to a process.
pub fn kill(pid: u32, signal: i32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid as i32, signal) };
}

/// A boolean column.
pub fn bools(batch: &RecordBatch, column: &str) -> Vec<bool> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column {column}"));
    let array = array.as_boolean();
    (0..array.len()).map(|i| array.value(i)).collect()
}

/// Starts a Python workload with its stdout piped, killed when the test ends.
pub fn start_python(args: &[&str]) -> Reaped {
    Reaped(
        Command::new(python())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("workload starts"),
    )
}

/// Creates `go` once a run's manifest exists under `out` (written after attach and target
/// set-up), so a waiting workload starts its work while it is traced.
pub fn release_when_attached(out: &Path, go: &Path) {
    let start = Instant::now();
    loop {
        let attached = std::fs::read_dir(out)
            .into_iter()
            .flatten()
            .flatten()
            .any(|run| run.path().join("manifest.json").exists());
        if attached {
            std::fs::write(go, b"go").unwrap();
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tracer never attached"
        );
        thread::sleep(Duration::from_millis(20));
    }
}
