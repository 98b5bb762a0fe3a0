//! The files tracer, traced for real: paths, bytes and calls per file, files opened before the
//! trace, slow operations, renames and unlinks; pipes and sockets are not files.

use std::{collections::HashMap, fs, path::Path, time::Duration};

use arrow::array::Array as _;
use scalpels_tests::*;

/// Sums of (calls, bytes) per op of the rows of `pid` on `path` in `file_io.parquet`.
fn per_op(run: &Path, pid: u64, path: &str) -> HashMap<String, (u64, u64)> {
    let io = read_table(&run.join("file_io.parquet"));
    let (pids, paths, ops) = (u64s(&io, "pid"), strings(&io, "path"), strings(&io, "op"));
    let (calls, bytes) = (u64s(&io, "calls"), u64s(&io, "bytes"));
    let mut totals: HashMap<String, (u64, u64)> = HashMap::new();
    for i in (0..io.num_rows()).filter(|&i| pids[i] == pid && paths[i] == path) {
        let t = totals.entry(ops[i].clone()).or_default();
        t.0 += calls[i];
        t.1 += bytes[i];
    }
    totals
}

#[test]
fn writes_of_a_file_with_its_path_bytes_and_fsync() {
    let out = out_dir("files-write");
    let file = out.join("data");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "files",
            "--",
            python(),
            &workload("direct_write.py"),
            file.to_str().unwrap(),
            "1048576",
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let pid = printed(&output.stdout, "pid")[0];
    let totals = per_op(&run, pid, file.to_str().unwrap());
    assert_eq!(totals.get("write"), Some(&(16, 1 << 20)), "{totals:?}");
    assert_eq!(totals.get("sync"), Some(&(1, 0)), "{totals:?}");
    assert_eq!(totals.get("open").map(|t| t.0), Some(1), "{totals:?}");
    assert_eq!(totals.get("close").map(|t| t.0), Some(1), "{totals:?}");
    // Python's own stdout is a pipe here: not a file, never in the table.
    let io = read_table(&run.join("file_io.parquet"));
    let (pids, fds) = (u64s(&io, "pid"), i64s(&io, "fd"));
    assert!(!(0..io.num_rows()).any(|i| pids[i] == pid && fds[i] == 1));
    let manifest = manifest(&run);
    assert_eq!(manifest["tracers"][0]["drops"]["events_dropped"], 0);
}

#[test]
fn files_opened_before_the_trace_are_named() {
    let out = out_dir("files-preopened");
    let go = out.join("go");
    let file = out.join("config.ini");
    fs::write(&file, vec![b'c'; 10_000]).unwrap();
    let workload_proc = start_python(&[
        &workload("file_ops.py"),
        "preopened",
        go.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let pid = workload_proc.pid();
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "files",
        "--pid",
        &pid.to_string(),
        "--duration",
        "60s",
    ]);
    release_when_attached(&out, &go);
    // Reaped first: a zombie would still be a live target.
    let workload_out = workload_proc.output();
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    assert_eq!(printed(&workload_out.stdout, "read"), [10_000]);
    let run = run_dir(&output);
    let totals = per_op(&run, pid.into(), file.to_str().unwrap());
    // 10 000 bytes in 4 KiB reads: 3 reads with data, and one that returns 0 at the end.
    assert_eq!(totals.get("read"), Some(&(4, 10_000)), "{totals:?}");
    assert_eq!(totals.get("close").map(|t| t.0), Some(1), "{totals:?}");
}

#[test]
fn slow_operations_renames_and_unlinks_are_events() {
    let out = out_dir("files-slow");
    let file = out.join("big");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "files,python",
            "--slow-file-io",
            "1ms",
            "--",
            python(),
            &workload("file_ops.py"),
            "slow_sync",
            file.to_str().unwrap(),
            "32",
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let pid = printed(&output.stdout, "pid")[0];
    let events = read_table(&run.join("file_io_events.parquet"));
    let (pids, ops, paths) = (
        u64s(&events, "pid"),
        strings(&events, "op"),
        strings(&events, "path"),
    );
    let durations = i64s(&events, "duration");
    let path = file.to_str().unwrap();
    // Writing back 32 MiB takes well over 1 ms: the fsync is an event, named.
    let sync = (0..events.num_rows())
        .find(|&i| pids[i] == pid && ops[i] == "sync")
        .expect("the fsync is a slow-operation event");
    assert_eq!(paths[sync], path);
    assert!(durations[sync] >= 1_000_000);
    // With the python tracer on, the event names the Python line that made the call.
    let script = workload("file_ops.py");
    let fsync_line = std::fs::read_to_string(&script)
        .unwrap()
        .lines()
        .position(|l| l.contains("os.fsync"))
        .unwrap() as u64
        + 1;
    let stack = u64s(&events, "python_stack_id")[sync];
    assert!(
        !events
            .column_by_name("python_stack_id")
            .unwrap()
            .is_null(sync)
    );
    let stacks = read_table(&run.join("python_stacks.parquet"));
    let (ids, levels, lines) = (
        u64s(&stacks, "stack_id"),
        u64s(&stacks, "level"),
        u64s(&stacks, "line"),
    );
    let (functions, files) = (strings(&stacks, "function"), strings(&stacks, "file"));
    let leaf = (0..stacks.num_rows())
        .find(|&i| ids[i] == stack && levels[i] == 0)
        .expect("the stack is in python_stacks");
    assert_eq!(
        (functions[leaf].as_str(), files[leaf].as_str(), lines[leaf]),
        ("<module>", script.as_str(), fsync_line)
    );
    // The same call is the interval's maximum in file_io.
    let io = read_table(&run.join("file_io.parquet"));
    let (io_pids, io_ops, max) = (
        u64s(&io, "pid"),
        strings(&io, "op"),
        i64s(&io, "max_latency"),
    );
    assert!(
        (0..io.num_rows())
            .any(|i| io_pids[i] == pid && io_ops[i] == "sync" && max[i] == durations[sync])
    );
    // Reading 32 MiB back from the disk in one call is slow too.
    let rets = i64s(&events, "ret");
    assert!(
        (0..events.num_rows()).any(|i| pids[i] == pid
            && ops[i] == "read"
            && paths[i] == path
            && rets[i] == 32 << 20
            && durations[i] >= 1_000_000),
        "no slow read of {path}"
    );
    // Every unlink is an event, slow or not.
    assert!(
        (0..events.num_rows()).any(|i| pids[i] == pid && ops[i] == "unlink" && paths[i] == path)
    );
}
