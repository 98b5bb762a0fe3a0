//! The syscalls tracer, traced for real: exact counts, errors, slow calls, and Parquet types.

use std::{process::Command, time::Duration};

use scalpels_tests::*;

#[test]
fn counts_calls_and_errors_of_a_thread_exactly() {
    let out = out_dir("counts");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls",
            "--",
            python(),
            &workload("syscall_counts.py"),
            "2000",
            "37",
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let tid = printed(&output.stdout, "worker_tid")[0];
    let pid = printed(&output.stdout, "pid")[0];
    let totals = syscall_totals(&run, |p, t| p == pid && t == tid);
    assert_eq!(
        totals.get("getppid"),
        Some(&(2000, 0)),
        "worker thread: {totals:?}"
    );
    assert_eq!(
        totals.get("openat"),
        Some(&(37, 37)),
        "worker thread: {totals:?}"
    );

    let batch = read_table(&run.join("syscalls.parquet"));
    let comms = strings(&batch, "comm");
    let tids = u64s(&batch, "tid");
    assert!(
        (0..batch.num_rows())
            .filter(|&i| tids[i] == tid)
            .all(|i| comms[i].starts_with("python"))
    );
    // Latencies are real: the getppid row has positive total and max no larger than total.
    let names = strings(&batch, "syscall");
    let (total, max) = (i64s(&batch, "total_latency"), i64s(&batch, "max_latency"));
    let row = (0..batch.num_rows())
        .find(|&i| tids[i] == tid && names[i] == "getppid")
        .unwrap();
    assert!(total[row] > 0 && max[row] > 0 && max[row] <= total[row]);
    // The histogram counts every call.
    let hist = batch.column_by_name("latency_hist").unwrap();
    let hist = arrow::array::AsArray::as_list::<i32>(hist).value(row);
    let counted: u64 = arrow::array::AsArray::as_primitive::<arrow::datatypes::UInt64Type>(&hist)
        .values()
        .iter()
        .sum();
    assert_eq!(counted, u64s(&batch, "calls")[row]);

    let manifest = manifest(&run);
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["tracers"][0]["name"], "syscalls");
    assert_eq!(manifest["tracers"][0]["status"], "attached");
    assert_eq!(manifest["tracers"][0]["drops"]["events_dropped"], 0);
    assert!(
        manifest["target"]["pids"]
            .as_array()
            .unwrap()
            .contains(&pid.into())
    );
}

#[test]
fn slow_calls_become_events_with_their_latency() {
    let out = out_dir("slow");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--slow-syscall",
            "10ms",
            "--",
            python(),
            &workload("sleeper.py"),
            "50",
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let pid = printed(&output.stdout, "pid")[0];
    let events = read_table(&run.join("syscall_events.parquet"));
    let (pids, names, durations) = (
        u64s(&events, "pid"),
        strings(&events, "syscall"),
        i64s(&events, "duration"),
    );
    let sleeps: Vec<i64> = (0..events.num_rows())
        .filter(|&i| pids[i] == pid && names[i] == "clock_nanosleep")
        .map(|i| durations[i])
        .collect();
    assert_eq!(
        sleeps.len(),
        1,
        "one slow clock_nanosleep expected, got {sleeps:?}"
    );
    assert!(
        (50_000_000..1_000_000_000).contains(&sleeps[0]),
        "slept {} ns",
        sleeps[0]
    );
    // Every event is at least the threshold, and the event time is within the run.
    assert!(durations.iter().all(|&d| d >= 10_000_000));
    let starts = i64s(&events, "start_time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert!(starts.iter().all(|&t| now - t < 120_000_000_000 && t < now));

    // The same run read by pandas has analyst-friendly types.
    let check = Command::new(python())
        .arg(workload("check_types.py"))
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn threads_of_a_leader_that_called_pthread_exit_stay_traced() {
    let out = out_dir("leader_exits");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls",
            "--",
            python(),
            &workload("leader_exits.py"),
            "1500",
        ],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("leader_alive"),
        "the leader never exited: {stdout}"
    );
    let run = run_dir(&output);
    let tid = printed(&output.stdout, "worker_tid")[0];
    let pid = printed(&output.stdout, "pid")[0];
    let totals = syscall_totals(&run, |p, t| p == pid && t == tid);
    assert_eq!(
        totals.get("getppid"),
        Some(&(1500, 0)),
        "the worker's calls after its leader exited: {totals:?}"
    );
}

#[test]
fn bpf_stats_count_every_run_of_the_programs() {
    let out = out_dir("bpf_stats");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls",
            "--bpf-stats",
            "--",
            python(),
            &workload("syscall_counts.py"),
            "3000",
            "0",
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let manifest = manifest(&run);
    // The tracer's work on system calls runs in the hooks it shares with other tracers.
    let programs = &manifest["shared_programs"];
    for program in ["hooks_enter", "hooks_exit"] {
        let runs = programs[program]["runs"].as_u64().unwrap_or(0);
        // Every system call of the machine runs them: at least the worker's 3000 getppid.
        assert!(runs >= 3000, "{program}: {programs}");
        assert!(
            programs[program]["run_time_ns"].as_u64().unwrap_or(0) > 0,
            "{program}: {programs}"
        );
        assert_eq!(programs[program]["recursion_misses"], 0, "{programs}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("system-call hooks (shared by the tracers above):\n  kernel: ")
            && stdout.contains(" program runs ("),
        "{stdout}"
    );
}

/// The calls a target is in the middle of at the run's edges are counted as cut, not lost
/// silently: a thread blocked in `openat` of a FIFO when the run attaches to its process
/// returns during the run (cut at the start), and a thread blocked in `read` until after
/// the run ends (cut at the end).
#[test]
fn calls_in_flight_at_the_edges_are_counted_as_cut() {
    let dir = out_dir("edges");
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let script = format!(
        "import sys, threading, time\n\
         opener = threading.Thread(target=lambda: open({fifo:?}).read())\n\
         opener.start()\n\
         time.sleep(0.3)\n\
         print('ready', flush=True)\n\
         sys.stdin.read()\n\
         opener.join()\n",
        fifo = fifo.to_str().unwrap()
    );
    let mut target = std::process::Command::new(python())
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut target);

    let out = dir.join("runs");
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "syscalls",
        "--pid",
        &target.id().to_string(),
        "--duration",
        "3s",
    ]);
    release_when_attached(&out, &dir.join("attached"));
    // The opener's openat returns now, inside the run.
    std::fs::write(&fifo, b"x").unwrap();
    let output = wait_with_limit(tracer, Duration::from_secs(60));
    assert!(output.status.success(), "{}", stderr(&output));
    drop(target.stdin.take());
    assert!(target.wait().unwrap().success());

    let drops = &manifest(&run_dir(&output))["tracers"][0]["drops"];
    // The main thread was in read(0) all along; the opener's openat began before the run.
    assert_eq!(drops["calls_cut_at_start"], 1, "{drops}");
    assert_eq!(drops["calls_cut_at_end"], 1, "{drops}");
}
