//! Bad input and failures: each gets a clear message, and nothing that was recorded is lost.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use scalpels_tests::*;

fn fails_with(args: &[&str], message: &str) {
    let output = trace(args, Duration::from_secs(30));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(message), "expected {message:?} in: {err}");
}

#[test]
fn unknown_service_lists_close_matches() {
    let name = format!("scalpelsdemo{}", std::process::id());
    // A process whose comm is close to the asked name, to be suggested.
    let script = out_dir("unknown").join(&name);
    fs::write(&script, "import time\ntime.sleep(30)\n").unwrap();
    let _close = Reaped(
        Command::new(python())
            .arg(&script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    thread::sleep(Duration::from_millis(300));
    let typo = format!("{name}x");
    let out = out_dir("unknown-out");
    // --wait-timeout 0: fail at once rather than wait for it to start.
    let args = [
        "--out",
        out.to_str().unwrap(),
        "--service",
        &typo,
        "--wait-timeout",
        "0",
    ];
    fails_with(&args, &format!("unknown service \"{typo}\""));
    let output = trace(&args, Duration::from_secs(30));
    assert!(
        stderr(&output).contains(&format!("close matches: {name}")),
        "{}",
        stderr(&output)
    );
    // Nothing was created for a run that could not start.
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn dead_pid_is_refused() {
    let mut child = Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let pid = child.id().to_string();
    fails_with(&["--pid", &pid], &format!("no process with pid {pid}"));
}

#[test]
fn unknown_tracer_lists_the_available_ones() {
    fails_with(
        &["--tracers", "syscalls,bogus", "--pid", "1"],
        "unknown tracer \"bogus\" (available: syscalls",
    );
}

/// A command that cannot run is refused before the tracers are loaded: no run is started.
#[test]
fn a_missing_command_is_refused_before_anything_is_loaded() {
    let out = out_dir("missing-command");
    fails_with(
        &["--out", out.to_str().unwrap(), "--", "/nonexistent/command"],
        "cannot run \"/nonexistent/command\": no such executable file",
    );
    let runs = fs::read_dir(&out).map_or(0, |entries| entries.count());
    assert_eq!(
        runs,
        0,
        "a refused run left a run directory in {}",
        out.display()
    );
}

#[test]
fn a_tracer_named_twice_runs_once() {
    let out = out_dir("tracer-twice");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls,syscalls",
            "--",
            "/bin/true",
        ],
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let run = run_dir(&output);
    let names: Vec<String> = manifest(&run)["tracers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["syscalls"]);
    let calls: u64 = u64s(&read_table(&run.join("syscalls.parquet")), "calls")
        .iter()
        .sum();
    assert!(
        calls > 0,
        "the one syscalls tracer counted the command's calls"
    );
}

#[test]
fn unprivileged_user_is_told_to_use_root() {
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(scalpels_trace())
        .args(["--pid", "1"])
        .output()
        .expect("setpriv (util-linux) runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("needs root"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn unwritable_output_directory_fails_before_tracing() {
    let out = out_dir("unwritable");
    let file = out.join("a-file");
    fs::write(&file, b"").unwrap();
    let under_file = file.join("runs");
    fails_with(
        &["--out", under_file.to_str().unwrap(), "--pid", "1"],
        "cannot create output directory",
    );
}

#[test]
fn missing_tracefs_that_cannot_be_mounted_is_explained() {
    // A private mount namespace where /sys/kernel is an empty read-only tmpfs: no tracefs, and
    // no way to mount it.
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o ro none /sys/kernel && exec {} --pid 1",
            scalpels_trace().display()
        ))
        .output()
        .expect("unshare (util-linux) runs");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("tracefs is not mounted and mounting it at /sys/kernel/tracing failed"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_tracer_that_cannot_attach_is_reported_and_the_others_run() {
    // A kernel without syscall tracepoints (CONFIG_FTRACE_SYSCALLS off), as far as the files
    // tracer can tell: an empty directory over tracefs' events/syscalls.
    let out = out_dir("unavailable");
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            "mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; \
             mount -t tmpfs none /sys/kernel/tracing/events/syscalls && exec \"$@\"",
        )
        .arg("sh")
        .arg(scalpels_trace())
        .args([
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls,files",
            "--",
        ])
        .args([python(), &workload("syscall_counts.py"), "300", "3"])
        .output()
        .expect("unshare (util-linux) runs");
    let run = run_dir(&output);
    assert!(
        stderr(&output).contains("warning: tracer files is unavailable"),
        "{}",
        stderr(&output)
    );
    let manifest = manifest(&run);
    let tracers = manifest["tracers"].as_array().unwrap();
    let files = tracers.iter().find(|t| t["name"] == "files").unwrap();
    assert_eq!(files["status"], "unavailable");
    assert!(
        files["reason"].as_str().unwrap().contains("sys_enter"),
        "{files}"
    );
    let syscalls = tracers.iter().find(|t| t["name"] == "syscalls").unwrap();
    assert_eq!(syscalls["status"], "attached");
    // The tracer that attached did its whole job.
    let tid = printed(&output.stdout, "worker_tid")[0];
    let totals = syscall_totals(&run, |_, t| t == tid);
    assert_eq!(totals.get("getppid"), Some(&(300, 0)), "{totals:?}");
    assert!(!run.join("file_io.parquet").exists());
}

/// Whether a run under `out` has attached (written its first manifest).
fn attached(out: &Path) -> bool {
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .any(|run| run.path().join("manifest.json").exists())
}

/// Whether a run under `out` has closed a segment of `table`.
fn closed_segment_exists(out: &Path, table: &str) -> bool {
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|run| std::fs::read_dir(run.path().join(format!("{table}.parts"))).ok())
        .flatten()
        .flatten()
        .any(|part| part.file_name().to_string_lossy().ends_with(".parquet"))
}

/// A small tmpfs mounted for one test, unmounted when it ends.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn new(test: &str, size: &str) -> Self {
        let dir = out_dir(test);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "none"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_ends_the_run_keeping_what_was_written() {
    let disk = SmallDisk::new("disk-full", "300k");
    let go = out_dir("disk-full-go").join("go");
    // Every call an event: the segments outgrow 300 KiB within a second of the burst.
    let tracer = spawn_trace(&[
        "--out",
        disk.0.to_str().unwrap(),
        "--tracers",
        "syscalls",
        "--slow-syscall",
        "0ns",
        "--interval",
        "200ms",
        "--flush-interval",
        "200ms",
        "--",
        python(),
        &workload("wait_then.py"),
        go.to_str().unwrap(),
        "getppid",
        "300000",
    ]);
    // The burst starts once a segment of each table is on disk (the waiting loop's calls are
    // events too), so the test knows something was written before the disk filled, however
    // fast the burst fills it.
    let start = Instant::now();
    for table in ["syscalls", "syscall_events"] {
        while !closed_segment_exists(&disk.0, table) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no {table} segment"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    std::fs::write(&go, b"go").unwrap();
    let output = wait_with_limit(tracer, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("No space left on device"),
        "{}",
        stderr(&output)
    );
    let run = std::fs::read_dir(&disk.0)
        .unwrap()
        .next()
        .expect("a run directory")
        .unwrap()
        .path();
    let manifest = manifest(&run);
    assert_eq!(manifest["status"], "failed");
    assert!(
        manifest["end_reason"]
            .as_str()
            .unwrap()
            .contains("No space left on device")
    );
    // What was flushed before the disk filled is readable, and no half-written file is left.
    // A table is merged into one file at the end when the room the run set aside for its
    // manifest (given back once the disk is full) holds it, else left in its segments.
    let table = |name: &str| {
        let merged = run.join(format!("{name}.parquet"));
        read_table(&if merged.exists() {
            merged
        } else {
            run.join(format!("{name}.parts"))
        })
    };
    let events = table("syscall_events");
    assert!(events.num_rows() > 0);
    let syscalls = table("syscalls");
    assert!(syscalls.num_rows() > 0);
    // Rows are counted when they reach the disk; those a write error kept off it, as lost.
    let tables = &manifest["tables"];
    assert_eq!(tables["syscall_events"]["rows"], events.num_rows() as u64);
    assert_eq!(tables["syscalls"]["rows"], syscalls.num_rows() as u64);
    let lost = tables["syscall_events"]["rows_lost"].as_u64().unwrap();
    assert!(lost > 0, "{tables}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("rows lost to write errors: syscall_events {lost}")),
        "{stdout}"
    );
    let parts = run.join("syscall_events.parts");
    let leftovers: Vec<_> = [run.clone(), parts]
        .iter()
        .filter(|dir| dir.is_dir())
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sigterm_mid_run_finalizes_files_and_manifest() {
    let out = out_dir("sigterm");
    let tracer = spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--pid",
        "1",
        "--pid",
        &std::process::id().to_string(),
    ]);
    // Mid-run: once attached (the manifest is written then; attaching every tracer can take
    // seconds on a loaded machine), plus a few intervals.
    let start = Instant::now();
    while !attached(&out) {
        assert!(start.elapsed() < Duration::from_secs(60), "never attached");
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_secs(3));
    kill(tracer.id(), libc::SIGTERM);
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let run = run_dir(&output);
    assert_eq!(output.status.code(), Some(0));
    let manifest = manifest(&run);
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["end_reason"], "SIGTERM");
    for table in ["syscalls", "syscall_events"] {
        assert!(run.join(format!("{table}.parquet")).is_file());
        assert!(!run.join(format!("{table}.parts")).exists());
        assert!(!run.join(format!("{table}.parquet.partial")).exists());
    }
    // This test process made syscalls while traced (sleeping, at least).
    let rows = read_table(&run.join("syscalls.parquet"));
    assert!(rows.num_rows() > 0);
    assert_eq!(
        manifest["tables"]["syscalls"]["rows"],
        rows.num_rows() as u64
    );
}

#[test]
fn sigkill_keeps_the_row_groups_already_flushed() {
    let out = out_dir("sigkill");
    let busy = Reaped(
        Command::new(python())
            .args([
                "-c",
                "import os, time\nwhile True:\n    os.getppid(); time.sleep(0.001)",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut tracer = Reaped(spawn_trace(&[
        "--out",
        out.to_str().unwrap(),
        "--pid",
        &busy.pid().to_string(),
        "--flush-interval",
        "1s",
    ]));
    let start = Instant::now();
    let run = loop {
        let run = fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .next();
        let flushed = run
            .as_ref()
            .and_then(|r| fs::read_dir(r.join("syscalls.parts")).ok())
            .is_some_and(|mut d| {
                d.any(|e| {
                    e.unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with("part-")
                })
            });
        if flushed {
            break run.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no segment was flushed"
        );
        thread::sleep(Duration::from_millis(100));
    };
    tracer.0.kill().unwrap();
    tracer.0.wait().unwrap();
    let rows = read_table(&run.join("syscalls.parts"));
    let pids = u64s(&rows, "pid");
    assert!(rows.num_rows() > 0 && pids.iter().all(|&p| p == busy.pid() as u64));
    assert!(strings(&rows, "syscall").iter().any(|s| s == "getppid"));
    assert_eq!(manifest(&run)["status"], "running");
}
