//! Continuous mode (`--rotate`): runs that follow each other without a gap, whose tables
//! together hold every call exactly once, and whose manifests each count the losses of their
//! own time; the old ones removed past `--keep-runs`; each closed run uploaded with
//! `--out s3://...`, and kept in staging, tracing going on, while the store is down.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use scalpels_tests::{fleet::*, *};

/// Traces `steady_calls.py` (4000 getppid calls over 4 s) with `--rotate 1s` and `extra`
/// options; the trace's output and its run directories, oldest first.
fn rotated_trace(test: &str, extra: &[&str]) -> (Output, Vec<PathBuf>) {
    let out = out_dir(test);
    let mut args = vec![
        "--out",
        out.to_str().unwrap(),
        "--tracers",
        "syscalls",
        "--rotate",
        "1s",
    ];
    args.extend(extra);
    let workload = workload("steady_calls.py");
    args.extend(["--", python(), &workload, "4000", "4"]);
    let output = trace(&args, Duration::from_secs(60));
    assert!(output.status.success(), "{}", stderr(&output));
    (output, runs_in(&out))
}

/// The run directories in `out`, oldest first.
fn runs_in(out: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    // Named after their start's second, and rotated a second apart at least.
    runs.sort();
    runs
}

fn getppid_of_worker(run: &Path, output: &Output) -> u64 {
    let tid = printed(&output.stdout, "worker_tid")[0];
    let totals = syscall_totals(run, |_, t| t == tid);
    totals.get("getppid").map_or(0, |&(calls, _)| calls)
}

#[test]
fn rotated_runs_follow_each_other_and_count_every_call_once() {
    let (output, runs) = rotated_trace("rotate-counts", &[]);
    assert!(runs.len() >= 3, "runs: {runs:?}");
    for pair in runs.windows(2) {
        let (closed, next) = (manifest(&pair[0]), manifest(&pair[1]));
        assert_eq!(closed["status"], "complete");
        assert_eq!(closed["end_reason"], "rotated");
        assert_eq!(closed["ended_at"], next["traced_from"], "{pair:?}");
        assert_eq!(next["started_at"], next["traced_from"]);
        assert_eq!(closed["partition"]["service"], next["partition"]["service"]);
    }
    let last = manifest(runs.last().unwrap());
    assert_eq!(last["status"], "complete");
    assert!(
        last["end_reason"]
            .as_str()
            .unwrap()
            .starts_with("command exited"),
        "{last}"
    );
    let counts: Vec<u64> = runs
        .iter()
        .map(|run| getppid_of_worker(run, &output))
        .collect();
    assert_eq!(counts.iter().sum::<u64>(), 4000, "per run: {counts:?}");
    // The calls are spread over the runs, so the boundaries were crossed while counting.
    assert!(counts.iter().filter(|&&c| c > 0).count() >= 3, "{counts:?}");

    // A rotated run is a run like any other to the analysis commands.
    let middle = runs[1].to_str().unwrap();
    let report = Command::new(scalpels_trace())
        .args(["report", middle, "--format", "json"])
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", stderr(&report));
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(report.to_string().contains("getppid"), "{report}");
}

#[test]
fn keep_runs_leaves_the_newest_closed_runs() {
    let (output, runs) = rotated_trace("rotate-keep", &["--keep-runs", "2"]);
    assert_eq!(runs.len(), 2, "runs: {runs:?}");
    let (older, newer) = (manifest(&runs[0]), manifest(&runs[1]));
    assert_eq!(older["end_reason"], "rotated");
    assert_eq!(older["ended_at"], newer["traced_from"]);
    assert_eq!(newer["status"], "complete");
    assert!(
        stderr(&output).contains("removed the old run"),
        "{}",
        stderr(&output)
    );
}

/// Waits until a run in `out` has closed (its manifest says `complete`).
fn wait_for_a_closed_run(out: &Path) {
    let start = Instant::now();
    while !std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .any(|run| {
            std::fs::read_to_string(run.path().join("manifest.json"))
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .is_some_and(|m| m["status"] == "complete")
        })
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no run closed in {}",
            out.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The syscalls tracer's loss counter `counter` in each run's manifest.
fn syscalls_drops(runs: &[PathBuf], counter: &str) -> Vec<u64> {
    runs.iter()
        .map(|run| {
            let drops = &manifest(run)["tracers"][0]["drops"];
            drops[counter].as_u64().unwrap_or_else(|| panic!("{drops}"))
        })
        .collect()
}

#[test]
fn each_rotated_run_counts_the_losses_of_its_own_time() {
    let dir = out_dir("rotate-losses");
    // Its only thread is in read(0) when it becomes a target: the call is cut by the start of
    // the trace, and counted (calls_cut_at_start) when it returns, which the test decides.
    let mut target = std::process::Command::new(python())
        .args([
            "-c",
            "import sys\n\
             print('ready', flush=True)\n\
             sys.stdin.readline()\n\
             sys.stdin.read()\n",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
        "--rotate",
        "1s",
        "--duration",
        "6s",
    ]);
    // The cut call returns in a later run than the first, and runs follow it.
    wait_for_a_closed_run(&out);
    target.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let output = wait_with_limit(tracer, Duration::from_secs(60));
    assert!(output.status.success(), "{}", stderr(&output));
    drop(target.stdin.take());
    assert!(target.wait().unwrap().success());

    let runs = runs_in(&out);
    assert!(runs.len() >= 4, "runs: {runs:?}");
    let cut_at_start = syscalls_drops(&runs, "calls_cut_at_start");
    // Counted once, in the run it returned in: not in the runs before, nor again in those after.
    assert_eq!(cut_at_start.iter().sum::<u64>(), 1, "{cut_at_start:?}");
    let returned_in = cut_at_start.iter().position(|&n| n == 1).unwrap();
    assert!(
        returned_in >= 1 && returned_in + 2 < runs.len(),
        "{cut_at_start:?}"
    );
    // The read it went back to was cut by the end of the trace, in the last run.
    let cut_at_end = syscalls_drops(&runs, "calls_cut_at_end");
    let mut expected = vec![0; runs.len()];
    *expected.last_mut().unwrap() = 1;
    assert_eq!(cut_at_end, expected);

    // The end-of-trace summary is the whole trace's: the runs' rows and losses added up.
    let (mut rows, mut dropped) = (0, 0);
    for run in &runs {
        let syscalls = &manifest(run)["tracers"][0];
        rows += syscalls["events"].as_u64().unwrap();
        let drops = syscalls["drops"].as_object().unwrap().values();
        dropped += drops.map(|n| n.as_u64().unwrap()).sum::<u64>();
    }
    let summary = format!("tracer syscalls: {rows} rows, {dropped} dropped");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&summary),
        "{summary}: {}",
        String::from_utf8_lossy(&output.stdout)
    );

    // `report` says what each run lost, and nothing of another run's.
    let lost = |run: &Path| {
        let report = analysis_json(&["report", run.to_str().unwrap(), "--format", "json"]);
        report["run"]["lost"].as_str().unwrap().to_owned()
    };
    assert_eq!(lost(&runs[returned_in]), "syscalls calls_cut_at_start=1");
    for run in &runs[returned_in + 1..runs.len() - 1] {
        assert_eq!(lost(run), "nothing", "{}", run.display());
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn each_rotated_run_is_uploaded_when_it_closes() {
    let server = S3Server::start();
    server.bucket("create", "rotated");
    let dir = out_dir("rotate-s3");
    let staging = dir.join("staging");
    let workload = workload("steady_calls.py");
    let output = trace_with(
        &[
            "--out",
            "s3://rotated/prod",
            "--staging",
            staging.to_str().unwrap(),
            "--host-label",
            "node-r",
            "--tracers",
            "syscalls",
            "--rotate",
            "1s",
            "--",
            python(),
            &workload,
            "4000",
            "4",
        ],
        &server.env,
        Duration::from_secs(60),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let closed = stderr(&output).matches("closed (rotated)").count();
    assert!(closed >= 3, "{}", stderr(&output));
    assert_eq!(staging.read_dir().unwrap().count(), 0, "staging kept");

    // One manifest per run, every run closed, each beginning where the one before ended.
    let mut manifests: Vec<serde_json::Value> = server
        .bucket("list", "rotated")
        .lines()
        .filter(|key| key.starts_with("prod/runs/host=node-r/") && key.ends_with("/manifest.json"))
        .map(|key| serde_json::from_str(&server.object("rotated", key)).unwrap())
        .collect();
    assert_eq!(manifests.len(), closed + 1);
    manifests.sort_by_key(|m| m["traced_from"].as_str().unwrap().to_owned());
    for pair in manifests.windows(2) {
        assert_eq!(pair[0]["end_reason"], "rotated");
        assert_eq!(pair[0]["ended_at"], pair[1]["traced_from"]);
    }
    assert!(manifests.iter().all(|m| m["status"] == "complete"));

    // Every run's rows are in the bucket, and the worker's calls are there once each.
    let check = server.check("s3://rotated/prod", &[]);
    let calls = getppids(&check);
    assert_eq!(calls.len(), manifests.len(), "{check}");
    assert_eq!(calls.iter().map(|(_, n)| n).sum::<u64>(), 4000, "{check}");
    assert!(calls.iter().filter(|(_, n)| *n > 0).count() >= 3, "{check}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The getppid calls of `wait_then.py GO spread`, over 3 s once `go` exists.
const SPREAD_CALLS: u64 = 3000;

#[test]
fn an_outage_at_a_rotation_keeps_tracing_and_keeps_the_runs() {
    let server = S3Server::start();
    server.bucket("create", "blink");
    let dir = out_dir("rotate-s3-outage");
    let (staging, go) = (dir.join("staging"), dir.join("go"));
    let started = Instant::now();
    let workload = workload("wait_then.py");
    let calls = SPREAD_CALLS.to_string();
    let tracer = spawn_trace_with(
        &[
            "--out",
            "s3://blink/prod",
            "--staging",
            staging.to_str().unwrap(),
            "--host-label",
            "node-o",
            "--tracers",
            "syscalls",
            "--rotate",
            "1s",
            "--",
            python(),
            &workload,
            go.to_str().unwrap(),
            "spread",
            &calls,
        ],
        &server.env,
    );
    // A second run's manifest is up once the first run is uploaded whole (a rotation waits for
    // the closing run's uploads before the next run's start). The worker has not called yet.
    let is_manifest = |k: &str| k.starts_with("prod/runs/host=node-o/") && k.ends_with(".json");
    let first = server.wait_for_key("blink", is_manifest);
    server.wait_for_key("blink", |k| is_manifest(k) && k != first);
    // The store goes away; the worker's calls all come after, over three rotations at least.
    server.bucket("drop", "blink");
    std::fs::write(&go, b"go").unwrap();
    let output = wait_with_limit(tracer, Duration::from_secs(30));
    let stderr = stderr(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Tracing went on to the worker's end; the last run's failed uploads are its exit status.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
    assert!(stderr.matches("closed (rotated)").count() >= 3, "{stderr}");

    // Every run traced during the outage is kept, complete, its failed uploads counted.
    let runs = runs_in(&staging);
    assert!(runs.len() >= 3, "runs: {runs:?}\n{stderr}");
    for run in &runs {
        let manifest = manifest(run);
        assert_eq!(manifest["status"], "complete", "{manifest}");
        assert!(
            manifest["upload"]["failed"].as_u64().unwrap() > 0,
            "{manifest}"
        );
        assert!(
            stderr.contains(&format!(
                "scalpels-trace publish {} --to s3://blink/prod",
                run.display()
            )),
            "{stderr}"
        );
    }
    let (closed, last) = runs.split_at(runs.len() - 1);
    assert!(
        closed
            .iter()
            .all(|r| manifest(r)["end_reason"] == "rotated")
    );
    let last = manifest(&last[0]);
    assert!(
        last["end_reason"]
            .as_str()
            .unwrap()
            .starts_with("command exited"),
        "{last}"
    );
    assert!(
        stdout.contains(&format!(
            "runs kept in {} (their uploads failed, see above): {}",
            staging.display(),
            closed.len()
        )),
        "{stdout}"
    );

    // Once the store is back, the kept runs are published, and hold every call of the worker.
    server.bucket("create", "blink");
    let mut publish = vec!["publish", "--to", "s3://blink/prod"];
    publish.extend(runs.iter().map(|r| r.to_str().unwrap()));
    assert_ok(
        &trace_with(&publish, &server.env, Duration::from_secs(20)),
        "publish",
    );
    let runs: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();
    let check = server.check("s3://blink/prod", &runs);
    let counts = getppids(&check);
    assert_eq!(counts.len(), runs.len(), "{check}");
    assert_eq!(
        counts.iter().map(|(_, n)| n).sum::<u64>(),
        SPREAD_CALLS,
        "{check}"
    );
    assert!(
        counts.iter().filter(|(_, n)| *n > 0).count() >= 2,
        "{check}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    std::fs::remove_dir_all(&dir).ok();
}
