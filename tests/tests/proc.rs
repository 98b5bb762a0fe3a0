//! The proc tracer, on real processes: a CPython workload's CPU time and memory as /proc
//! accounts them, per interval, against what the workload measured itself; its write counters;
//! and the machine-wide tables.

use std::{collections::BTreeSet, path::Path, time::Duration};

use scalpels_tests::*;

const MIB: u64 = 1 << 20;

/// Rows of `table` whose `pid` column is `pid`.
fn rows_of(batch: &arrow::array::RecordBatch, pid: u64) -> Vec<usize> {
    let pids = u64s(batch, "pid");
    (0..batch.num_rows()).filter(|&i| pids[i] == pid).collect()
}

fn sum(values: &[u64], rows: &[usize]) -> u64 {
    rows.iter().map(|&i| values[i]).sum()
}

/// MemTotal of /proc/meminfo, in bytes.
fn mem_total() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("MemTotal line");
    kib * 1024
}

fn check_system_stats(run: &Path, proc_intervals: &BTreeSet<i64>) {
    let system = read_table(&run.join("system_stats.parquet"));
    let (starts, ends) = (
        i64s(&system, "interval_start"),
        i64s(&system, "interval_end"),
    );
    // One row per interval, back to back, covering every interval of proc_stats.
    for i in 1..system.num_rows() {
        assert_eq!(starts[i], ends[i - 1], "row {i} follows row {}", i - 1);
    }
    let system_intervals: BTreeSet<i64> = starts.iter().copied().collect();
    assert_eq!(system_intervals.len(), system.num_rows());
    assert!(proc_intervals.is_subset(&system_intervals));

    let (user, kernel) = (i64s(&system, "cpu_user"), i64s(&system, "cpu_system"));
    for i in 0..system.num_rows() {
        // The workload alone keeps a CPU busy; only the last interval, cut short when the
        // command exits, can be too short for a clock tick.
        if ends[i] - starts[i] >= 100_000_000 {
            assert!(user[i] + kernel[i] > 0, "no CPU time in interval {i}");
        }
    }
    assert!(u64s(&system, "cpus")[0] >= 1);
    let total = mem_total();
    assert!(u64s(&system, "mem_total").iter().all(|&m| m == total));
    assert!(
        f64s(&system, "load1")
            .iter()
            .all(|l| l.is_finite() && *l >= 0.0)
    );
}

#[test]
fn cpu_time_and_memory_of_a_busy_process_add_up() {
    let out = out_dir("proc-cpu");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "proc",
            "--interval",
            "500ms",
            "--",
            python(),
            &workload("cpu_and_memory.py"),
            "2.5",
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let pid = printed(&output.stdout, "pid")[0];
    let reported_ns = printed(&output.stdout, "cpu_ns")[0];
    let held = printed(&output.stdout, "held_bytes")[0];

    let stats = read_table(&run.join("proc_stats.parquet"));
    let mine = rows_of(&stats, pid);
    let intervals: BTreeSet<i64> = {
        let starts = i64s(&stats, "interval_start");
        mine.iter().map(|&i| starts[i]).collect()
    };
    assert!(
        intervals.len() >= 4,
        "pid {pid} has rows in {} intervals",
        intervals.len()
    );
    assert_eq!(intervals.len(), mine.len(), "one row per interval");

    // The workload was born under the trace and sampled one last time as it exited (a zombie
    // still has its CPU times): its rows hold all its CPU time. What it printed (os.times())
    // misses only its own interpreter shutdown after the print, and both are in 10 ms ticks.
    let (user, kernel) = (i64s(&stats, "cpu_user"), i64s(&stats, "cpu_system"));
    let traced_ns: i64 = mine.iter().map(|&i| user[i] + kernel[i]).sum();
    let error = (traced_ns - reported_ns as i64).abs() as f64 / reported_ns as f64;
    println!("cpu: traced {traced_ns} ns, workload reported {reported_ns} ns");
    assert!(
        error < 0.10,
        "traced {traced_ns} ns of CPU, the workload reported {reported_ns} ns"
    );

    let rss = optional_u64s(&stats, "rss_bytes");
    let peak = mine.iter().filter_map(|&i| rss[i]).max().unwrap();
    println!("peak rss: {peak} bytes");
    assert!(peak >= held, "peak RSS {peak} < the {held} bytes it held");
    let threads = u64s(&stats, "threads");
    assert!(mine.iter().all(|&i| threads[i] >= 1));
    let comm = strings(&stats, "comm");
    assert!(mine.iter().all(|&i| comm[i].starts_with("python")));
    let cmdline = strings(&stats, "cmdline");
    assert!(cmdline[mine[0]].ends_with("cpu_and_memory.py 2.5"));
    // It touched every page of what it held: at least one minor fault per page.
    assert!(sum(&u64s(&stats, "minor_faults"), &mine) >= held / 4096);

    check_system_stats(&run, &intervals);
    let manifest = manifest(&run);
    assert_eq!(manifest["tracers"][0]["name"], "proc");
    assert_eq!(
        manifest["tables"]["proc_stats"]["rows"],
        stats.num_rows() as u64
    );
    for table in ["disk_stats", "net_stats"] {
        assert!(run.join(format!("{table}.parquet")).exists());
    }
    assert!(String::from_utf8_lossy(&output.stdout).contains("proc:"));
}

#[test]
fn writes_of_a_process_are_counted_alongside_other_tracers() {
    let out = out_dir("proc-write");
    let file = out.join("data");
    let bytes = (8 * MIB).to_string();
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls,proc",
            "--interval",
            "200ms",
            "--",
            python(),
            &workload("write_fsync.py"),
            file.to_str().unwrap(),
            &bytes,
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let pid = printed(&output.stdout, "pid")[0];
    assert_eq!(printed(&output.stdout, "written"), [8 * MIB]);

    let stats = read_table(&run.join("proc_stats.parquet"));
    let mine = rows_of(&stats, pid);
    assert!(!mine.is_empty(), "no proc_stats row for pid {pid}");
    let wchar = sum(&u64s(&stats, "wchar"), &mine);
    println!("wchar: {wchar} bytes");
    // The data, plus its three lines of output.
    assert!(
        (8 * MIB..8 * MIB + 4096).contains(&wchar),
        "wchar {wchar} of pid {pid}"
    );
    // Every write(2) the syscalls tracer saw is one /proc counted.
    let syscw = sum(&u64s(&stats, "syscw"), &mine);
    let writes = syscall_totals(&run, |p, _| p == pid)
        .get("write")
        .map_or(0, |&(calls, _)| calls);
    assert_eq!(syscw, writes, "syscw against write calls traced");
}

#[test]
fn context_switches_count_every_thread_of_a_process() {
    let out = out_dir("proc-threads");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "proc",
            "--interval",
            "250ms",
            "--",
            python(),
            &workload("thread_sleeps.py"),
            "300",
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let pid = printed(&output.stdout, "pid")[0];
    let worker = printed(&output.stdout, "worker_switches")[0];
    assert!(worker >= 300, "the worker switched {worker} times");
    let stats = read_table(&run.join("proc_stats.parquet"));
    let mine = rows_of(&stats, pid);
    let voluntary = optional_u64s(&stats, "voluntary_ctxt_switches");
    let counted: u64 = mine.iter().filter_map(|&i| voluntary[i]).sum();
    // The main thread only waited; nearly all of them are the worker's.
    assert!(
        counted >= worker,
        "proc_stats counted {counted} voluntary switches; the worker alone made {worker}"
    );
}

/// The command lines `proc_stats` stored for a command run with secrets in its argv, with
/// `extra` options, and the command line the manifest stored.
fn stored_cmdlines(test: &str, extra: &[&str]) -> (BTreeSet<String>, serde_json::Value) {
    let out = out_dir(test);
    let mut args = vec!["--out", out.to_str().unwrap(), "--tracers", "proc"];
    args.extend(["--interval", "200ms"]);
    args.extend(extra);
    // Alive over a few intervals: a zombie's command line cannot be read.
    args.extend(["--", python(), "-c", "import time; time.sleep(1)"]);
    args.extend(["--db-password=hunter2-SECRET", "--password", "hunter2"]);
    args.extend([
        "transport_url=rabbit://openstack:pw@ctl:5672/",
        "--config-file",
        "/x.conf",
    ]);
    let output = trace(&args, Duration::from_secs(60));
    let run = run_dir(&output);
    let stats = read_table(&run.join("proc_stats.parquet"));
    let cmdlines = optional_strings(&stats, "cmdline")
        .into_iter()
        .flatten()
        .collect();
    (cmdlines, manifest(&run)["command_line"].clone())
}

#[test]
fn secrets_in_command_lines_are_redacted_unless_kept() {
    let python = python();
    let (cmdlines, command_line) = stored_cmdlines("proc-redacted", &[]);
    let redacted = format!(
        "{python} -c import time; time.sleep(1) --db-password=*** --password *** \
         transport_url=rabbit://openstack:***@ctl:5672/ --config-file /x.conf"
    );
    assert_eq!(cmdlines, BTreeSet::from([redacted]));
    let manifest_line = command_line.to_string();
    assert!(!manifest_line.contains("hunter2"), "{manifest_line}");
    assert!(
        manifest_line.contains("--db-password=***"),
        "{manifest_line}"
    );

    let (cmdlines, command_line) = stored_cmdlines("proc-kept", &["--keep-cmdline"]);
    let kept = format!(
        "{python} -c import time; time.sleep(1) --db-password=hunter2-SECRET --password hunter2 \
         transport_url=rabbit://openstack:pw@ctl:5672/ --config-file /x.conf"
    );
    assert_eq!(cmdlines, BTreeSet::from([kept]));
    assert!(
        command_line
            .to_string()
            .contains("--db-password=hunter2-SECRET")
    );
}
