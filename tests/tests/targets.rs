//! Targeting for real: --pid with fork following, services by process name and by cgroup.

use std::{fs, path::Path, time::Duration};

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

#[test]
fn service_by_systemd_unit_cgroup_filters_on_the_cgroup() {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = mounts
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4))
        .expect("cgroup v2 is mounted");
    let unit = format!("scalpels-test-{}", std::process::id());
    let cgroup = Path::new(root)
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
