//! The python tracer on real interpreters: the on-CPU stacks of known hot functions, with
//! their files and lines, per thread, and a sleeping thread's time off CPU, for every CPython
//! 3.8-3.13 installed (absent ones are skipped) and Debian's stripped python3.11.

use std::{collections::HashMap, path::Path, process::Output, time::Duration};

use arrow::array::Array as _;

use scalpels_tests::*;

type Frames = Vec<(String, String, Option<u64>)>;

/// `python_stacks.parquet` as stack_id -> frames, innermost first.
fn stacks(run: &Path) -> HashMap<u64, Frames> {
    let batch = read_table(&run.join("python_stacks.parquet"));
    let (ids, levels) = (u64s(&batch, "stack_id"), u64s(&batch, "level"));
    let (functions, files) = (strings(&batch, "function"), strings(&batch, "file"));
    let lines = batch.column_by_name("line").unwrap();
    let line_values = u64s(&batch, "line");
    let mut rows: Vec<usize> = (0..batch.num_rows()).collect();
    rows.sort_by_key(|&i| (ids[i], levels[i]));
    let mut stacks: HashMap<u64, Frames> = HashMap::new();
    for i in rows {
        let line = (!lines.is_null(i)).then_some(line_values[i]);
        stacks
            .entry(ids[i])
            .or_default()
            .push((functions[i].clone(), files[i].clone(), line));
    }
    stacks
}

/// The stack most samples of thread `tid` landed in, and how many samples the thread had.
fn top_stack(run: &Path, tid: u64) -> (u64, usize) {
    let samples = read_table(&run.join("python_samples.parquet"));
    let (tids, ids) = (u64s(&samples, "tid"), u64s(&samples, "stack_id"));
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for i in (0..samples.num_rows()).filter(|&i| tids[i] == tid) {
        *counts.entry(ids[i]).or_default() += 1;
    }
    let total = counts.values().sum();
    let top = counts.into_iter().max_by_key(|&(_, n)| n).map(|(id, _)| id);
    (
        top.unwrap_or_else(|| panic!("no samples of thread {tid}")),
        total,
    )
}

fn check_hot_stacks(interpreter: &str, run: &Path, output: &[u8]) {
    let script = workload("hot_functions.py");
    let value = |key: &str| printed(output, key)[0];
    let stacks = stacks(run);
    let (top, samples) = top_stack(run, value("main_tid"));
    assert!(
        samples >= 50,
        "{interpreter}: {samples} samples of the main thread"
    );
    let frames = &stacks[&top];
    let names: Vec<&str> = frames.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names[..3],
        ["leaf", "middle", "outer"],
        "{interpreter}: {frames:?}"
    );
    assert!(
        frames[..3].iter().all(|f| f.1 == script),
        "{interpreter}: {frames:?}"
    );
    let leaf_line = frames[0].2.expect("leaf has a line");
    assert!(
        [value("leaf_loop"), value("leaf_add")].contains(&leaf_line),
        "{interpreter}: leaf at line {leaf_line}"
    );
    assert_eq!(frames[1].2, Some(value("middle_call")), "{interpreter}");
    assert_eq!(frames[2].2, Some(value("outer_call")), "{interpreter}");
    // The other thread is attributed to its own function.
    let (spinner, spinner_samples) = top_stack(run, value("spinner_tid"));
    assert!(
        spinner_samples >= 20,
        "{interpreter}: {spinner_samples} spinner samples"
    );
    assert_eq!(stacks[&spinner][0].0, "spinner", "{interpreter}");
    check_off_cpu(interpreter, run, output, &stacks);
}

/// The sleeping thread's time off CPU is attributed to the line that sleeps.
fn check_off_cpu(interpreter: &str, run: &Path, output: &[u8], stacks: &HashMap<u64, Frames>) {
    let value = |key: &str| printed(output, key)[0];
    let samples = read_table(&run.join("python_samples.parquet"));
    let (tids, ids, kinds) = (
        u64s(&samples, "tid"),
        u64s(&samples, "stack_id"),
        strings(&samples, "kind"),
    );
    let weights = i64s(&samples, "weight");
    let waiter = value("waiter_tid");
    let mut in_sleep = 0i64;
    for i in (0..samples.num_rows()).filter(|&i| tids[i] == waiter && kinds[i] == "off_cpu") {
        let leaf = &stacks[&ids[i]][0];
        assert_eq!(leaf.0, "waiter", "{interpreter}: {:?}", stacks[&ids[i]]);
        if leaf.2 == Some(value("waiter_sleep")) {
            in_sleep += weights[i];
        }
    }
    // Off CPU while sleeping, plus the short waits for the GIL after each wake-up.
    let slept = value("waiter_slept_ns") as f64;
    let ratio = in_sleep as f64 / slept;
    assert!(
        (0.95..1.15).contains(&ratio),
        "{interpreter}: off-CPU {in_sleep} ns at the sleep line for {slept} ns slept"
    );
}

fn trace_hot_functions(interpreter: &str, test: &str) -> (std::path::PathBuf, Output) {
    let out = out_dir(test);
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "python",
            "--python-hz",
            "499",
            "--",
            interpreter,
            &workload("hot_functions.py"),
            "2",
        ],
        Duration::from_secs(60),
    );
    (run_dir(&output), output)
}

/// The interpreters to check: the tests' own, Debian's, and pyenv's 3.8 to 3.13 (each one
/// missing is a skip `cargo xtask test` reports).
fn interpreters() -> Vec<String> {
    let mut found = vec![python().to_owned(), pythons::debian_python().to_owned()];
    for minor in 8..=13 {
        let minor = format!("3.{minor}");
        let needs = format!("pyenv's CPython {minor}");
        if let Some(binary) = pythons::or_skip(pythons::pyenv_python(&minor), &needs) {
            found.push(binary.display().to_string());
        }
    }
    found
}

/// `scalpels-trace flamegraph` draws the run: its folded stacks hold the hot path with its lines.
fn check_flamegraph(run: &Path, output: &[u8]) {
    let value = |key: &str| printed(output, key)[0];
    let drawn = std::process::Command::new(scalpels_trace())
        .arg("flamegraph")
        .arg(run)
        .output()
        .unwrap();
    assert!(drawn.status.success(), "{}", stderr(&drawn));
    let folded = std::fs::read_to_string(run.join("python-on-cpu.folded")).unwrap();
    let hot = format!(
        "outer (hot_functions.py:{});middle (hot_functions.py:{});leaf (hot_functions.py:",
        value("outer_call"),
        value("middle_call")
    );
    let total: u64 = folded
        .lines()
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    let on_hot_path: u64 = folded
        .lines()
        .filter(|l| l.contains(&hot))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    // Two threads share the GIL: the main thread's hot path holds about half of the CPU time.
    assert!(
        on_hot_path * 4 > total,
        "{on_hot_path} of {total} µs on {hot}:\n{folded}"
    );
    let svg = std::fs::read_to_string(run.join("python-on-cpu.svg")).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("leaf (hot_functions.py:"));
}

/// `scalpels-trace export` writes what python_samples holds: speedscope's JSON with one
/// profile per process whose weights add up to the on-CPU samples' (ns), its hottest sample
/// the hot path (frames with file and line, outermost first); collapsed stacks as the
/// flame graph's.
fn check_export(run: &Path, output: &[u8]) {
    let value = |key: &str| printed(output, key)[0];
    let export = |args: &[&str]| {
        let done = std::process::Command::new(scalpels_trace())
            .arg("export")
            .arg(run)
            .args(args)
            .output()
            .unwrap();
        assert!(done.status.success(), "{}", stderr(&done));
    };
    export(&[]);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("python-on-cpu.speedscope.json")).unwrap())
            .unwrap();
    let samples = read_table(&run.join("python_samples.parquet"));
    let (kinds, weights, pids) = (
        strings(&samples, "kind"),
        i64s(&samples, "weight"),
        u64s(&samples, "pid"),
    );
    let on_cpu: Vec<usize> = (0..kinds.len()).filter(|&i| kinds[i] == "on_cpu").collect();
    let frames = json["shared"]["frames"].as_array().unwrap();
    let profiles = json["profiles"].as_array().unwrap();
    let mut exported_pids: Vec<u64> = on_cpu.iter().map(|&i| pids[i]).collect();
    exported_pids.sort_unstable();
    exported_pids.dedup();
    assert_eq!(
        profiles.len(),
        exported_pids.len(),
        "one profile per process"
    );
    let total: i64 = on_cpu.iter().map(|&i| weights[i]).sum();
    let exported: i64 = profiles
        .iter()
        .flat_map(|p| p["weights"].as_array().unwrap())
        .map(|w| w.as_i64().unwrap())
        .sum();
    assert_eq!(exported, total, "exported weights against python_samples");
    let main = profiles
        .iter()
        .find(|p| {
            p["name"]
                .as_str()
                .unwrap()
                .ends_with(&value("pid").to_string())
        })
        .expect("the workload's process has a profile");
    assert_eq!(main["unit"], "nanoseconds");
    assert_eq!(main["type"], "sampled");
    let (samples, weights) = (
        main["samples"].as_array().unwrap(),
        main["weights"].as_array().unwrap(),
    );
    assert_eq!(samples.len(), weights.len());
    let named = |sample: &serde_json::Value| -> Vec<(String, Option<u64>)> {
        sample
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let frame = &frames[f.as_u64().unwrap() as usize];
                (
                    frame["name"].as_str().unwrap().to_owned(),
                    frame["line"].as_u64(),
                )
            })
            .collect()
    };
    // Heaviest first, and the hot path is outer → middle → leaf at the lines the workload
    // printed.
    let on_hot_path = samples.iter().any(|sample| {
        let names = named(sample);
        names.windows(3).any(|w| {
            w[0] == ("outer".into(), Some(value("outer_call")))
                && w[1] == ("middle".into(), Some(value("middle_call")))
                && w[2].0 == "leaf"
        })
    });
    assert!(on_hot_path, "no exported stack runs outer → middle → leaf");
    assert!(weights.windows(2).all(|w| w[0].as_i64() >= w[1].as_i64()));
    let collapsed = run.join("exported.collapsed");
    export(&["--format", "collapsed", "-o", collapsed.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(collapsed).unwrap(),
        std::fs::read_to_string(run.join("python-on-cpu.folded")).unwrap(),
    );
    check_pprof_export(run, output, &on_cpu, total);
}

/// The pprof export, read back by `go tool pprof`: as many samples and as much CPU time as
/// the on-CPU rows of python_samples, the hot path outer → middle → leaf with the workload's
/// file and lines, the threads' pids and tids as labels.
fn check_pprof_export(run: &Path, output: &[u8], on_cpu: &[usize], total_ns: i64) {
    let value = |key: &str| printed(output, key)[0];
    let profile = pprof::export_and_read(run, &[], &run.join("exported.pb.gz"));
    assert_eq!(profile.sample_types, ["samples/count", "cpu/nanoseconds"]);
    assert_eq!(profile.totals(), [on_cpu.len() as i64, total_ns]);
    let script = workload("hot_functions.py");
    let (outer, middle) = (
        format!("outer {script}:{}", value("outer_call")),
        format!("middle {script}:{}", value("middle_call")),
    );
    let leaf = format!("leaf {script}:");
    let main_tid = value("main_tid").to_string();
    let hot: i64 = profile
        .samples
        .iter()
        .filter(|sample| {
            let frames = profile.frames(sample);
            frames
                .windows(3)
                .any(|w| w[0].starts_with(&leaf) && w[1] == middle && w[2] == outer)
        })
        .inspect(|sample| {
            assert_eq!(sample.label("pid"), Some(value("pid").to_string().as_str()));
            assert_eq!(sample.label("tid"), Some(main_tid.as_str()));
        })
        .map(|sample| sample.values[1])
        .sum();
    // As in the flame graph: the main thread's hot path holds about half of the CPU time.
    assert!(
        hot * 4 > total_ns,
        "{hot} of {total_ns} ns on the hot path: {profile:?}"
    );

    let samples = read_table(&run.join("python_samples.parquet"));
    let (kinds, weights) = (strings(&samples, "kind"), i64s(&samples, "weight"));
    let off_cpu: Vec<i64> = (0..kinds.len())
        .filter(|&i| kinds[i] == "off_cpu")
        .map(|i| weights[i])
        .collect();
    let profile = pprof::export_and_read(run, &["--off-cpu"], &run.join("off-cpu.pb.gz"));
    assert_eq!(profile.sample_types, ["samples/count", "wall/nanoseconds"]);
    assert_eq!(
        profile.totals(),
        [off_cpu.len() as i64, off_cpu.iter().sum::<i64>()]
    );
}

#[test]
fn on_cpu_stacks_of_hot_functions_in_every_installed_cpython() {
    for (i, interpreter) in interpreters().iter().enumerate() {
        let (run, output) = trace_hot_functions(interpreter, &format!("python-hot-{i}"));
        check_hot_stacks(interpreter, &run, &output.stdout);
        if i == 0 {
            check_flamegraph(&run, &output.stdout);
            check_export(&run, &output.stdout);
        }
        let manifest = manifest(&run);
        assert_eq!(manifest["tracers"][0]["drops"]["samples_dropped"], 0);
    }
}

#[test]
fn attaches_to_a_running_interpreter() {
    let out = out_dir("python-running");
    let go = out.join("go");
    let workload_proc = start_python(&[&workload("hot_functions.py"), "3", go.to_str().unwrap()]);
    // Let the interpreter get going before the trace starts.
    std::thread::sleep(Duration::from_millis(300));
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "python",
        "--python-hz",
        "499",
        "--pid",
        &workload_proc.pid().to_string(),
    ]);
    release_when_attached(&out, &go);
    let workload_out = workload_proc.output();
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    check_hot_stacks(python(), &run_dir(&output), &workload_out.stdout);
}

#[test]
fn slow_syscalls_carry_the_python_stack_that_made_them() {
    let out = out_dir("python-syscall-stack");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls,python",
            "--",
            python(),
            &workload("slow_call.py"),
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let value = |key: &str| printed(&output.stdout, key)[0];
    let events = read_table(&run.join("syscall_events.parquet"));
    let (tids, names) = (u64s(&events, "tid"), strings(&events, "syscall"));
    let stack_ids = events.column_by_name("python_stack_id").unwrap();
    let stack_values = u64s(&events, "python_stack_id");
    let sleeps: Vec<usize> = (0..events.num_rows())
        .filter(|&i| tids[i] == value("tid") && names[i] == "clock_nanosleep")
        .collect();
    assert_eq!(sleeps.len(), 5, "slow sleeps of the main thread");
    let stacks = stacks(&run);
    let script = workload("slow_call.py");
    for i in sleeps {
        assert!(!stack_ids.is_null(i), "sleep {i} has no Python stack");
        let frames = &stacks[&stack_values[i]];
        assert_eq!(
            frames[..2],
            [
                (
                    "fetch_config".to_owned(),
                    script.clone(),
                    Some(value("sleep_line"))
                ),
                (
                    "handle_request".to_owned(),
                    script.clone(),
                    Some(value("call_line"))
                ),
            ],
            "{frames:?}"
        );
    }
    check_thread_names(&run, value("tid"));
}

/// pprof's export labels each sample with its thread's name: the `comm` the syscalls table
/// has of it, that of the program it ran (before its `exec`, the command's first thread had
/// the loader's name for a few calls).
fn check_thread_names(run: &Path, tid: u64) {
    let syscalls = read_table(&run.join("syscalls.parquet"));
    let (tids, comms, calls) = (
        u64s(&syscalls, "tid"),
        strings(&syscalls, "comm"),
        u64s(&syscalls, "calls"),
    );
    let mut calls_by_name: std::collections::BTreeMap<&str, u64> = Default::default();
    for i in (0..tids.len()).filter(|&i| tids[i] == tid) {
        *calls_by_name.entry(comms[i].as_str()).or_default() += calls[i];
    }
    let comm = calls_by_name
        .iter()
        .max_by_key(|(_, calls)| **calls)
        .map(|(name, _)| name.to_string())
        .unwrap();
    assert!(comm.starts_with("python"), "{calls_by_name:?}");
    let profile = pprof::export_and_read(run, &["--off-cpu"], &run.join("off-cpu.pb.gz"));
    let tid = tid.to_string();
    let main: Vec<_> = profile
        .samples
        .iter()
        .filter(|s| s.label("tid") == Some(tid.as_str()))
        .collect();
    assert!(!main.is_empty(), "no off-CPU sample of thread {tid}");
    for sample in main {
        assert_eq!(
            sample.label("thread_name"),
            Some(comm.as_str()),
            "{sample:?}"
        );
    }
}

#[test]
fn unsupported_interpreters_are_reported_and_the_other_tracers_go_on() {
    // pyenv's 3.7 (or 2.7): older than the layouts Scalpels knows.
    let old = ["3.7", "2.7"]
        .iter()
        .find_map(|minor| pythons::pyenv_python(minor));
    let Some(old) = pythons::or_skip(old, "pyenv's CPython 3.7 or 2.7") else {
        return;
    };
    let out = out_dir("python-unsupported");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "python,syscalls",
            "--",
            old.to_str().unwrap(),
            "-c",
            "import os, time\nfor _ in range(500): os.getppid()\ntime.sleep(0.3)\nprint('pid=%d' % os.getpid())",
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let pid = printed(&output.stdout, "pid")[0];
    let manifest = manifest(&run);
    let tracers = manifest["tracers"].as_array().unwrap();
    let python = tracers.iter().find(|t| t["name"] == "python").unwrap();
    let note = python["notes"][pid.to_string()]
        .as_str()
        .unwrap_or_default();
    assert!(note.starts_with("unsupported CPython"), "{python}");
    let totals = syscall_totals(&run, |p, _| p == pid);
    assert_eq!(totals.get("getppid").map(|t| t.0), Some(500), "{totals:?}");
}

/// The rows of `python_calls.parquet` of process `pid` as (function, file, calls, total ns);
/// none when the table was not written.
fn call_rows(run: &Path, pid: u64) -> Vec<(String, String, u64, i64)> {
    let path = run.join("python_calls.parquet");
    if !path.exists() {
        return Vec::new();
    }
    let batch = read_table(&path);
    let (pids, calls) = (u64s(&batch, "pid"), u64s(&batch, "calls"));
    let (functions, files) = (strings(&batch, "function"), strings(&batch, "file"));
    let totals = i64s(&batch, "total_time");
    (0..batch.num_rows())
        .filter(|&i| pids[i] == pid)
        .map(|i| (functions[i].clone(), files[i].clone(), calls[i], totals[i]))
        .collect()
}

fn trace_calls(test: &str, interpreter: &str) -> (std::path::PathBuf, u64) {
    let out = out_dir(test);
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "python",
            "--python-calls",
            "--",
            interpreter,
            &workload("counted_calls.py"),
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    (run, printed(&output.stdout, "pid")[0])
}

#[test]
fn python_calls_counts_every_call_through_usdt() {
    let debian = pythons::debian_python();
    let (run, pid) = trace_calls("python-calls", debian);
    let rows = call_rows(&run, pid);
    let script = workload("counted_calls.py");
    let counted: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "counted" && r.1 == script)
        .collect();
    let calls: u64 = counted.iter().map(|r| r.2).sum();
    let total_ns: i64 = counted.iter().map(|r| r.3).sum();
    assert_eq!(calls, 12345, "{rows:?}");
    assert!(total_ns > 0, "{rows:?}");
    // Debian's site-packages has a `caller` of its own (setuptools' _distutils_hack).
    let caller: u64 = rows
        .iter()
        .filter(|r| r.0 == "caller" && r.1 == script)
        .map(|r| r.2)
        .sum();
    assert_eq!(caller, 1, "{rows:?}");
}

#[test]
fn python_calls_without_usdt_probes_is_noted() {
    // pyenv builds CPython without its USDT probes.
    let Some(pyenv) = pythons::or_skip(pythons::pyenv_python("3.11"), "pyenv's CPython 3.11")
    else {
        return;
    };
    let (run, pid) = trace_calls("python-calls-pyenv", pyenv.to_str().unwrap());
    let manifest = manifest(&run);
    let tracers = manifest["tracers"].as_array().unwrap();
    let python = tracers.iter().find(|t| t["name"] == "python").unwrap();
    let note = python["notes"][pid.to_string()]
        .as_str()
        .unwrap_or_default();
    assert!(
        note.contains("no USDT probes: exact calls unavailable"),
        "{python}"
    );
    assert!(call_rows(&run, pid).is_empty());
}

/// The address of CPython's `python:NAME` USDT semaphore in Debian's (non-PIE) python3.11.
fn semaphore_address(name: &str) -> u64 {
    let notes = std::process::Command::new("readelf")
        .args(["-n", pythons::debian_python()])
        .output()
        .expect("readelf runs");
    let text = String::from_utf8_lossy(&notes.stdout);
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != format!("Name: {name}"));
    let location = lines.nth(1).expect("probe location line");
    let semaphore = location.rsplit("Semaphore: 0x").next().unwrap().trim();
    u64::from_str_radix(semaphore, 16).unwrap()
}

fn semaphore_value(pid: u32, address: u64) -> u16 {
    use std::os::unix::fs::FileExt as _;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut value = [0u8; 2];
    mem.read_exact_at(&mut value, address).unwrap();
    u16::from_ne_bytes(value)
}

#[test]
fn python_calls_leaves_no_probe_armed_in_forked_workers() {
    let debian = pythons::debian_python();
    let out = out_dir("python-calls-fork");
    let go = out.join("go");
    let service = Reaped(
        std::process::Command::new(debian)
            .arg(workload("forking_service.py"))
            .arg(&go)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "python",
        "--python-calls",
        "--pid",
        &service.pid().to_string(),
        "--duration",
        "3s",
    ]);
    release_when_attached(&out, &go);
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let run = run_dir(&output);
    // The worker forked while its parent's probes were armed: both are disarmed at the end.
    let child = manifest(&run)["target"]["pids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_u64())
        .find(|&p| p != u64::from(service.pid()))
        .expect("the forked worker was traced") as u32;
    for name in ["function__entry", "function__return", "line"] {
        let address = semaphore_address(name);
        assert_eq!(
            semaphore_value(service.pid(), address),
            0,
            "{name} of the service"
        );
        assert_eq!(semaphore_value(child, address), 0, "{name} of the worker");
    }
    kill(child, libc::SIGKILL);
}

/// The stack most on-CPU samples landed in while `deep_stacks.py` ran `depth` nested calls,
/// with whether its samples were marked truncated, and the frames the workload counted.
fn deep_stack(test: &str, workload_args: &[&str], extra: &[&str]) -> (Frames, bool, u64) {
    let out = out_dir(test);
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "python",
        "--python-hz",
        "499",
    ];
    args.extend(extra);
    let script = workload("deep_stacks.py");
    args.extend(["--", python(), &script]);
    args.extend(workload_args);
    let output = trace(&args, Duration::from_secs(60));
    let run = run_dir(&output);
    let pid = printed(&output.stdout, "pid")[0];
    let (top, samples) = top_stack(&run, pid);
    assert!(samples >= 200, "{samples} samples of the deep thread");
    let table = read_table(&run.join("python_samples.parquet"));
    let (ids, truncated) = (u64s(&table, "stack_id"), bools(&table, "truncated"));
    let marks: Vec<bool> = (0..table.num_rows())
        .filter(|&i| ids[i] == top)
        .map(|i| truncated[i])
        .collect();
    assert!(marks.iter().all(|&m| m == marks[0]), "one stack, one mark");
    (
        stacks(&run).remove(&top).unwrap(),
        marks[0],
        printed(&output.stdout, "depth")[0],
    )
}

fn names(frames: &Frames) -> Vec<&str> {
    frames.iter().map(|f| f.0.as_str()).collect()
}

/// The stack is whole: every frame the workload counted, from `leaf` in.
fn assert_whole(names: &[&str], truncated: bool, depth: u64) {
    assert!(!truncated, "{names:?}");
    assert_eq!(
        names.len() as u64,
        depth,
        "every frame the workload counted"
    );
    assert_eq!(names[0], "leaf");
}

#[test]
fn python_stacks_of_200_frames_are_whole_by_default() {
    let (frames, truncated, depth) = deep_stack("deep-whole", &["200", "2"], &[]);
    let names = names(&frames);
    assert_whole(&names, truncated, depth);
    assert!(names[1..202].iter().all(|&n| n == "level"), "{names:?}");
    assert_eq!(names[202..], ["root", "<module>"]);
}

/// Frames of generators live outside the thread's data stack, whose windows the kernel reads
/// the other frames from: the walk goes through them and back without losing a frame.
#[test]
fn python_stacks_through_generators_are_whole() {
    let (frames, truncated, depth) = deep_stack("deep-generators", &["200", "2", "40"], &[]);
    let names = names(&frames);
    assert_whole(&names, truncated, depth);
    let generators = names.iter().filter(|&&n| n == "through_generator").count();
    assert_eq!(generators, 5, "{names:?}");
    assert_eq!(
        names.iter().filter(|&&n| n == "level").count() + generators + 3,
        names.len(),
        "{names:?}"
    );
    assert_eq!(names[names.len() - 2..], ["root", "<module>"]);
}

#[test]
fn python_stacks_deeper_than_256_frames_keep_their_root_around_one_cut() {
    let (frames, truncated, depth) = deep_stack("deep-cut", &["400", "2"], &[]);
    let names = names(&frames);
    assert!(depth > 400, "the workload ran {depth} frames deep");
    assert!(truncated, "{names:?}");
    // 192 innermost, one cut mark, 64 outermost.
    assert_eq!(names.len(), 257, "{names:?}");
    assert_eq!(names[0], "leaf");
    assert_eq!(names[192], "[truncated]");
    assert_eq!(
        names.iter().filter(|&&n| n == "[truncated]").count(),
        1,
        "{names:?}"
    );
    assert_eq!(names[255..], ["root", "<module>"], "the root is kept");
}

#[test]
fn python_stacks_past_the_depth_asked_for_say_their_root_is_lost() {
    let (frames, truncated, _) =
        deep_stack("deep-lost-root", &["100", "2"], &["--python-depth", "50"]);
    let names = names(&frames);
    assert!(truncated);
    assert_eq!(names.len(), 51, "{names:?}");
    assert_eq!(names[0], "leaf");
    assert!(names[1..50].iter().all(|&n| n == "level"), "{names:?}");
    assert_eq!(names[50], "[truncated]");
}

/// Waits shorter than `--python-off-cpu-every` are sampled in proportion to their length: the
/// weights still add up to the time waited, from a fraction of the stack walks.
#[test]
fn short_waits_off_cpu_are_sampled_without_bias() {
    let waits = 5000;
    let out = out_dir("python-short-waits");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls,python",
            "--",
            python(),
            &workload("short_waits.py"),
            &waits.to_string(),
        ],
        Duration::from_secs(60),
    );
    let run = run_dir(&output);
    let value = |key: &str| printed(&output.stdout, key)[0];
    let stacks = stacks(&run);
    let samples = read_table(&run.join("python_samples.parquet"));
    let (tids, ids, kinds, weights) = (
        u64s(&samples, "tid"),
        u64s(&samples, "stack_id"),
        strings(&samples, "kind"),
        i64s(&samples, "weight"),
    );
    let (mut taken, mut weighed) = (0u64, 0i64);
    for i in (0..samples.num_rows()).filter(|&i| {
        tids[i] == value("worker_tid")
            && kinds[i] == "off_cpu"
            && stacks[&ids[i]][0].2 == Some(value("sleep_line"))
    }) {
        taken += 1;
        weighed += weights[i];
    }
    let slept = value("slept_ns") as f64;
    let ratio = weighed as f64 / slept;
    // About one sample per millisecond waited (a relative error of a few percent).
    assert!(
        (0.8..1.25).contains(&ratio),
        "{taken} samples weighing {weighed} ns for {slept} ns slept"
    );
    assert!(
        taken < waits / 2,
        "{taken} stacks taken for {waits} waits of about 150 µs"
    );
}
