//! Continuous mode (`--rotate`): runs that follow each other without a gap, whose tables
//! together hold every call exactly once, and the old ones removed past `--keep-runs`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use scalpels_tests::*;

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
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    // Named after their start's second, and rotated a second apart at least.
    runs.sort();
    (output, runs)
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
