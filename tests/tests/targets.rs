//! Targeting for real: --pid with fork following, services by process name and by cgroup, and
//! services that start after scalpels-trace does.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use scalpels_tests::*;

#[test]
fn pid_mode_follows_forked_children_and_ends_when_they_exit() {
    let out = out_dir("pid-fork");
    let go = out.join("go");
    let workload_proc = start_python(&[
        &workload("wait_then.py"),
        go.to_str().unwrap(),
        "fork",
        "1234",
    ]);
    let pid = workload_proc.pid().to_string();
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--pid",
        &pid,
        "--duration",
        "60s",
    ]);
    release_when_attached(&out, &go);
    let workload_out = workload_proc.output();
    let child = printed(&workload_out.stdout, "child")[0];

    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let run = run_dir(&output);
    let totals = syscall_totals(&run, |p, _| p == child);
    assert_eq!(
        totals.get("getppid").map(|t| t.0),
        Some(1234),
        "child: {totals:?}"
    );
    let manifest = manifest(&run);
    assert_eq!(manifest["end_reason"], "targets exited");
    let pids = manifest["target"]["pids"].as_array().unwrap().clone();
    assert!(
        pids.contains(&child.into()) && pids.contains(&pid.parse::<u64>().unwrap().into()),
        "{pids:?}"
    );
}

#[test]
fn service_by_process_name_traces_only_that_service() {
    let out = out_dir("service-name");
    let go = out.join("go");
    // A console script, as OpenStack installs them: python3 /usr/bin/nova-compute.
    let name = format!("fake-nova-{}", std::process::id());
    let script = out.join(&name);
    fs::copy(workload("wait_then.py"), &script).unwrap();
    let service = start_python(&[
        script.to_str().unwrap(),
        go.to_str().unwrap(),
        "serve",
        "777",
    ]);
    let bystander_go = out.join("bystander-go");
    let bystander = start_python(&[
        &workload("wait_then.py"),
        bystander_go.to_str().unwrap(),
        "serve",
        "555",
    ]);
    fs::write(&bystander_go, b"go").unwrap();

    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--service",
        &name,
        "--duration",
        "4s",
    ]);
    release_when_attached(&out, &go);
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let run = run_dir(&output);
    let totals = syscall_totals(&run, |p, _| p == service.pid() as u64);
    assert_eq!(
        totals.get("getppid").map(|t| t.0),
        Some(777),
        "service: {totals:?}"
    );
    assert!(
        syscall_totals(&run, |p, _| p == bystander.pid() as u64).is_empty(),
        "bystander traced"
    );
    let manifest = manifest(&run);
    assert_eq!(manifest["target"]["resolved_as"], "process name");
    assert_eq!(manifest["end_reason"], "duration");
}

/// Where cgroup v2 is mounted.
fn cgroup2_root() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = mounts
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4))
        .expect("cgroup v2 is mounted");
    PathBuf::from(root)
}

#[test]
fn service_by_systemd_unit_cgroup_filters_on_the_cgroup() {
    let unit = format!("scalpels-test-{}", std::process::id());
    let cgroup = cgroup2_root()
        .join("system.slice")
        .join(format!("{unit}.service"));
    fs::create_dir_all(&cgroup).unwrap();

    let out = out_dir("service-cgroup");
    let go = out.join("go");
    let service = start_python(&[
        &workload("wait_then.py"),
        go.to_str().unwrap(),
        "serve",
        "321",
    ]);
    fs::write(cgroup.join("cgroup.procs"), service.pid().to_string()).unwrap();

    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--service",
        &unit,
        "--duration",
        "4s",
    ]);
    release_when_attached(&out, &go);
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let service_pid = service.pid() as u64;
    drop(service);
    let run = run_dir(&output);
    let totals = syscall_totals(&run, |p, _| p == service_pid);
    assert_eq!(
        totals.get("getppid").map(|t| t.0),
        Some(321),
        "service: {totals:?}"
    );
    let manifest = manifest(&run);
    assert_eq!(manifest["target"]["resolved_as"], "systemd unit cgroup");
    assert_eq!(manifest["target"]["cgroup"], cgroup.display().to_string());
    // Only the cgroup's processes were traced: not the test itself, not the tracer.
    let batch = read_table(&run.join("syscalls.parquet"));
    assert!(u64s(&batch, "pid").iter().all(|&p| p == service_pid));
    fs::remove_dir(&cgroup).unwrap();
}

/// How long after scalpels-trace starts waiting for a service the tests start it: mid-way
/// between the scans scalpels-trace makes, so that only the process events it reads can find the
/// service as it starts.
const SCAN_PHASE: Duration = Duration::from_millis(1550);

/// scalpels-trace's stderr, read as it is written: each line is sent to the test, and the whole
/// text is what the thread returns.
fn read_stderr(tracer: &mut Child) -> (mpsc::Receiver<String>, JoinHandle<String>) {
    let stderr = tracer.stderr.take().expect("stderr is piped");
    let (lines, received) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            let _ = lines.send(line);
        }
        text
    });
    (received, reader)
}

/// Blocks until scalpels-trace says it waits for `service` (its tracers are attached then).
fn wait_for_waiting(lines: &mpsc::Receiver<String>, service: &str) {
    let expected = format!("waiting for service {service} to start");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        match lines.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.contains(&expected) => return,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    panic!("scalpels-trace never said {expected:?}");
}

/// No run directory (or anything else) was left in `out`.
fn assert_empty(out: &Path) {
    let left: Vec<_> = fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn service_started_later_is_waited_for_and_traced_from_its_first_calls() {
    let out = out_dir("service-later");
    let name = format!("late-svc-{}", std::process::id());
    // A console script named after the service, as OpenStack installs them.
    let script = out.join(&name);
    fs::copy(workload("calls_at_start.py"), &script).unwrap();
    let runs = out.join("runs");
    let mut tracer = spawn_trace(&[
        "--out",
        runs.to_str().unwrap(),
        "--service",
        &name,
        "--duration",
        "3",
        "--tracers",
        "syscalls,proc",
    ]);
    let (lines, stderr) = read_stderr(&mut tracer);
    wait_for_waiting(&lines, &name);
    // Well after the wait began, and half-way between two of the scans of /proc that start
    // with it (every 100 ms where process events cannot be read, else every second): found by
    // a scan, the service would be found after its first statements.
    thread::sleep(SCAN_PHASE);
    let service = start_python(&[script.to_str().unwrap(), "4321", "30"]);

    let output = wait_with_limit(tracer, Duration::from_secs(60));
    let stderr = stderr.join().unwrap();
    assert!(output.status.success(), "stderr:\n{stderr}");
    let run = run_dir(&output);
    let pid = u64::from(service.pid());
    // Its first statements, some 20 ms after its exec, are all there.
    let totals = syscall_totals(&run, |p, _| p == pid);
    assert_eq!(
        totals.get("getppid").map(|t| t.0),
        Some(4321),
        "service: {totals:?}\nstderr:\n{stderr}"
    );
    let proc_stats = read_table(&run.join("proc_stats.parquet"));
    assert!(
        u64s(&proc_stats, "pid").contains(&pid),
        "no proc_stats row of {pid}"
    );
    let manifest = manifest(&run);
    assert_eq!(manifest["target"]["resolved_as"], "process name");
    assert!(
        manifest["target"]["pids"]
            .as_array()
            .unwrap()
            .contains(&pid.into()),
        "{manifest}"
    );
    assert_eq!(manifest["end_reason"], "duration");
    // --duration counts from when the service was found, not from scalpels-trace's start.
    let interval_ends = i64s(&proc_stats, "interval_end");
    let interval_starts = i64s(&proc_stats, "interval_start");
    let covered = interval_ends.iter().max().unwrap() - interval_starts.iter().min().unwrap();
    assert!(
        covered >= 2_500_000_000,
        "the tables cover {covered} ns of a 3 s run"
    );
    assert_eq!(stderr.matches("waiting for service").count(), 1, "{stderr}");
}

#[test]
fn unit_started_later_is_traced_by_its_cgroup() {
    let unit = format!("scalpels-late-unit-{}", std::process::id());
    let cgroup = cgroup2_root()
        .join("system.slice")
        .join(format!("{unit}.service"));
    let out = out_dir("unit-later");
    let mut tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--service",
        &unit,
        "--duration",
        "3",
        "--tracers",
        "syscalls",
    ]);
    let (lines, stderr) = read_stderr(&mut tracer);
    wait_for_waiting(&lines, &unit);
    thread::sleep(SCAN_PHASE);
    // As systemd starts a unit: its cgroup, then a process that moves into it and execs the
    // service (whose name is not the unit's).
    fs::create_dir_all(&cgroup).unwrap();
    let service = Reaped(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec {} {} 2345 30",
                cgroup.display(),
                python(),
                workload("calls_at_start.py")
            ))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let output = wait_with_limit(tracer, Duration::from_secs(60));
    let stderr = stderr.join().unwrap();
    let pid = u64::from(service.pid());
    drop(service);
    // Before any assertion, so that a failing run leaves no cgroup behind.
    fs::remove_dir(&cgroup).unwrap();
    assert!(output.status.success(), "stderr:\n{stderr}");
    let run = run_dir(&output);
    let totals = syscall_totals(&run, |p, _| p == pid);
    assert_eq!(
        totals.get("getppid").map(|t| t.0),
        Some(2345),
        "service: {totals:?}\nstderr:\n{stderr}"
    );
    let manifest = manifest(&run);
    assert_eq!(manifest["target"]["resolved_as"], "systemd unit cgroup");
    assert_eq!(manifest["target"]["cgroup"], cgroup.display().to_string());
}

#[test]
fn waiting_for_a_service_gives_up_after_wait_timeout_and_leaves_no_run() {
    let out = out_dir("service-never");
    let name = format!("never-svc-{}", std::process::id());
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--service",
            &name,
            "--wait-timeout",
            "1",
            "--tracers",
            "syscalls",
        ],
        Duration::from_secs(60),
    );
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&format!(
            "waiting for service {name} to start (up to 1s; --wait-timeout)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "error: service {name} did not start within 1s (--wait-timeout): unknown service \"{name}\""
        )),
        "{err}"
    );
    assert_empty(&out);
}

#[test]
fn sigint_while_waiting_ends_without_a_run() {
    let out = out_dir("service-interrupted");
    let name = format!("never-svc-{}", std::process::id());
    let mut tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--service",
        &name,
        "--tracers",
        "syscalls",
    ]);
    let (lines, stderr) = read_stderr(&mut tracer);
    wait_for_waiting(&lines, &name);
    kill(tracer.id(), libc::SIGINT);
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let stderr = stderr.join().unwrap();
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("SIGINT while waiting for service {name}")),
        "{stderr}"
    );
    assert_empty(&out);
}
