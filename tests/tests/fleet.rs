//! Fleets: runs of several hosts published into one place are read as one dataset per table by
//! pyarrow.dataset and DuckDB; a run traced straight to an S3-compatible server (moto, on
//! 127.0.0.1) is uploaded segment by segment while it runs; a failed upload is counted, kept
//! and published later.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use scalpels_tests::{fleet::*, *};

const GETPPIDS: [u64; 2] = [3000, 7000];

#[test]
fn runs_of_two_hosts_are_one_dataset_per_table() {
    let out = out_dir("fleet-hosts");
    let runs = out.join("runs");
    let mut run_dirs = Vec::new();
    // One host named by the option, the other by the environment variable.
    for (i, label) in [(0, "node-a"), (1, "node-b")] {
        let calls = GETPPIDS[i].to_string();
        let mut args = vec!["--out", runs.to_str().unwrap()];
        let mut env = Vec::new();
        if i == 0 {
            args.extend(["--host-label", label]);
        } else {
            env.push(("SCALPELS_HOST_LABEL", label.to_owned()));
        }
        let script = workload("syscall_counts.py");
        args.extend(["--", python(), &script, &calls, "10"]);
        let output = trace_with(&args, &env, Duration::from_secs(60));
        let run = run_dir(&output);
        assert_eq!(manifest(&run)["partition"]["host"], label);
        run_dirs.push(run);
    }
    let fleet = out.join("fleet");
    let runs: Vec<&str> = run_dirs.iter().map(|r| r.to_str().unwrap()).collect();
    let mut publish = vec!["publish", "--to", fleet.to_str().unwrap()];
    publish.extend(&runs);
    let published = assert_ok(&trace(&publish, Duration::from_secs(30)), "publish");
    assert_eq!(published.lines().count(), 2, "{published}");
    assert!(
        fleet
            .join("syscalls/host=node-a/service=python3")
            .read_dir()
            .unwrap()
            .count()
            == 1
    );

    let mut check_args = vec![fleet.to_str().unwrap()];
    check_args.extend(&runs);
    let check = assert_ok(
        &python_script("fleet_check.py", &check_args, &[]),
        "fleet_check.py",
    );
    assert!(check.contains("fleet ok"), "{check}");
    // The runs' own counts, found under their hosts: each worker's getppid calls are exact.
    assert_eq!(
        getppids(&check),
        [
            ("node-a".to_owned(), GETPPIDS[0]),
            ("node-b".to_owned(), GETPPIDS[1])
        ]
    );
    let tables = check.lines().filter(|l| l.contains(" rows=")).count();
    assert!(tables >= 2 * 10, "every table of both runs: {check}");

    // Publishing again replaces, it does not add.
    assert_ok(&trace(&publish, Duration::from_secs(30)), "publish again");
    let check = assert_ok(
        &python_script("fleet_check.py", &check_args, &[]),
        "fleet_check.py after publishing again",
    );
    assert!(check.contains("fleet ok"), "{check}");
    std::fs::remove_dir_all(&out).ok();
}

/// Traces a worker making `GETPPIDS[0]` getppid calls after `go` exists, to `s3://BUCKET/PREFIX`
/// with 1 s segments.
fn spawn_to_s3(server: &S3Server, fleet: &str, staging: &Path, go: &Path) -> std::process::Child {
    Command::new(scalpels_trace())
        .args([
            "--out",
            fleet,
            "--staging",
            staging.to_str().unwrap(),
            "--host-label",
            "node-s3",
            "--tracers",
            "syscalls,proc",
            "--flush-interval",
            "1s",
            "--",
            python(),
            &workload("wait_then.py"),
            go.to_str().unwrap(),
            "getppid",
            &GETPPIDS[0].to_string(),
        ])
        .envs(server.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scalpels-trace starts")
}

#[test]
fn a_run_traced_to_s3_is_uploaded_segment_by_segment() {
    let server = S3Server::start();
    server.bucket("create", "traces");
    let out = out_dir("fleet-s3");
    let (staging, go) = (out.join("staging"), out.join("go"));
    let mut child = spawn_to_s3(&server, "s3://traces/prod", &staging, &go);
    // The manifest is up as soon as the tracers are attached, still "running".
    server.wait_for_key("traces", |k| {
        k.starts_with("prod/runs/host=node-s3/service=python3/") && k.ends_with("/manifest.json")
    });
    // A closed segment is up while the run still goes (the workload waits for `go`).
    let segment = server.wait_for_key("traces", |k| {
        k.starts_with("prod/proc_stats/host=node-s3/") && k.ends_with("/part-00000.parquet")
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "{segment} came with the end of the run"
    );
    std::fs::write(&go, b"go").unwrap();
    let output = wait_with_limit(child, Duration::from_secs(60));
    let stdout = assert_ok(&output, "scalpels-trace --out s3://");
    assert!(
        stdout.contains("run: s3://traces/prod host=node-s3 service=python3 run="),
        "{stdout}"
    );
    assert!(stdout.contains("(staging copy removed)"), "{stdout}");
    assert_eq!(staging.read_dir().unwrap().count(), 0, "staging kept");

    let check = server.check("s3://traces/prod", &[]);
    assert_eq!(getppids(&check), [("node-s3".to_owned(), GETPPIDS[0])]);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_failed_upload_is_counted_kept_and_published_later() {
    let server = S3Server::start();
    server.bucket("create", "outage");
    let out = out_dir("fleet-s3-outage");
    let (staging, go) = (out.join("staging"), out.join("go"));
    let child = spawn_to_s3(&server, "s3://outage/prod", &staging, &go);
    server.wait_for_key("outage", |k| k.ends_with("/part-00000.parquet"));
    // The store goes away mid-run; the rest of the run cannot be uploaded.
    server.bucket("drop", "outage");
    std::fs::write(&go, b"go").unwrap();
    let output = wait_with_limit(child, Duration::from_secs(60));
    let stderr = stderr(&output);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
    assert!(
        stderr.contains("uploads to s3://outage/prod failed"),
        "{stderr}"
    );
    let runs: Vec<PathBuf> = staging
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "the staging copy is kept");
    let run = &runs[0];
    let manifest = manifest(run);
    assert_eq!(manifest["status"], "complete");
    assert!(
        manifest["upload"]["failed"].as_u64().unwrap() > 1,
        "{manifest}"
    );
    // After the first failure the others are counted, not tried against a store that is down.
    let errors = manifest["upload"]["errors"].as_array().unwrap();
    assert!(
        errors[0].as_str().unwrap().contains("NoSuchBucket"),
        "{manifest}"
    );
    assert!(
        errors[1..].iter().all(|e| e
            .as_str()
            .unwrap()
            .ends_with("not tried after the failure above")),
        "{manifest}"
    );
    assert!(stderr.contains(&format!(
        "scalpels-trace publish {} --to s3://outage/prod",
        run.display()
    )));

    server.bucket("create", "outage");
    let mut publish = Command::new(scalpels_trace());
    publish
        .args(["publish", run.to_str().unwrap(), "--to", "s3://outage/prod"])
        .envs(server.env.iter().map(|(k, v)| (*k, v.as_str())));
    assert_ok(&publish.output().unwrap(), "publish");
    let check = server.check("s3://outage/prod", &[run]);
    assert_eq!(getppids(&check), [("node-s3".to_owned(), GETPPIDS[0])]);
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn a_store_that_refuses_writes_fails_before_tracing() {
    let server = S3Server::start();
    let out = out_dir("fleet-s3-missing");
    let staging = out.join("staging");
    let start = Instant::now();
    let output = trace_with(
        &[
            "--out",
            "s3://no-such-bucket/x",
            "--staging",
            staging.to_str().unwrap(),
            "--",
            "true",
        ],
        &server.env,
        Duration::from_secs(30),
    );
    let stderr = stderr(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot write to s3://no-such-bucket/x/runs/host="),
        "{stderr}"
    );
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        staging.read_dir().unwrap().count(),
        0,
        "no staging run left"
    );
    std::fs::remove_dir_all(&out).ok();
}
