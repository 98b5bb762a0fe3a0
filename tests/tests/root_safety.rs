//! Safe as root: what a trace writes is private to its owner, whatever the umask.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use scalpels_tests::*;

/// Every directory and file under `dir` (and `dir` itself) with its permission bits.
fn modes(dir: &Path, found: &mut Vec<(String, bool, u32)>) {
    let meta = fs::metadata(dir).unwrap();
    found.push((
        dir.display().to_string(),
        true,
        meta.permissions().mode() & 0o7777,
    ));
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modes(&path, found);
        } else {
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
            found.push((path.display().to_string(), false, mode));
        }
    }
}

#[test]
fn runs_are_private_under_any_umask_and_the_command_keeps_the_callers() {
    let dir = out_dir("private");
    let out = dir.join("runs");
    let made = dir.join("made-by-command");
    // Started under umask 000, as a careless cron job or shell would; the command reports the
    // umask it got and creates a file.
    let script = format!("umask; touch {}", made.display());
    let output = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(scalpels_trace())
        .args([
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "syscalls,proc,files",
        ])
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_limit(output, Duration::from_secs(60));
    let run = run_dir(&output);

    let mut found = Vec::new();
    modes(&run, &mut found);
    assert!(found.iter().any(|(p, _, _)| p.ends_with("manifest.json")));
    assert!(found.iter().any(|(p, _, _)| p.ends_with(".parquet")));
    for (path, is_dir, mode) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{path} is {mode:o}");
    }
    // The output directory it had to create is private too.
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // The traced command behaved as untraced: it had the caller's umask.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.lines().any(|l| l == "0000"),
        "umask line in: {stdout}"
    );
    assert_eq!(
        fs::metadata(&made).unwrap().permissions().mode() & 0o777,
        0o666
    );
}

/// An --out that another user could rename or redirect is refused before anything is created
/// or loaded; a sticky directory is fine; --allow-shared-out writes there anyway.
#[test]
fn an_out_other_users_could_redirect_is_refused() {
    let dir = out_dir("shared-out");
    let theirs = dir.join("theirs");
    fs::create_dir_all(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let open = dir.join("open");
    fs::create_dir_all(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let sticky = dir.join("sticky");
    fs::create_dir_all(&sticky).unwrap();
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec!["--out", out.to_str().unwrap(), "--tracers", "proc"];
        args.extend(extra);
        args.extend(["--", "/bin/true"]);
        trace(&args, Duration::from_secs(60))
    };

    for (parent, why) in [
        (&theirs, "is owned by user 65534".to_owned()),
        (&open, "can be written by other users (mode 777)".to_owned()),
    ] {
        let out = parent.join("runs");
        let output = run(&out, &[]);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(
            err.contains("refusing to write runs under") && err.contains(&why),
            "{err}"
        );
        assert!(!out.exists(), "a refused run created {}", out.display());
    }

    let output = run(&sticky.join("runs"), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&open.join("runs"), &["--allow-shared-out"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(run_dir(&output).starts_with(open.join("runs")));
}

/// With --allow-shared-out, another user who can write the output directory swaps the run
/// directory mid-run for one of their own, holding links to a file of root's where the run's
/// files will go: the run still writes into its own directory and follows no link.
#[test]
fn a_run_directory_swapped_mid_run_is_not_followed() {
    let dir = out_dir("swapped");
    let open = dir.join("open");
    fs::create_dir_all(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let victim = dir.join("root-only");
    fs::write(&victim, b"root's").unwrap();
    let go = dir.join("go");
    let tracer = spawn_trace(&[
        "--out",
        open.to_str().unwrap(),
        "--allow-shared-out",
        "--tracers",
        "syscalls",
        "--",
        python(),
        &workload("wait_then.py"),
        go.to_str().unwrap(),
        "getppid",
        "1000",
    ]);
    // Once the run has written its first manifest, its directory is swapped.
    release_when_attached(&open, &dir.join("attached"));
    let run = fs::read_dir(&open).unwrap().next().unwrap().unwrap().path();
    let moved = dir.join("moved");
    fs::rename(&run, &moved).unwrap();
    fs::create_dir(&run).unwrap();
    for name in [
        "manifest.json.partial",
        "manifest.json",
        "syscalls.parquet.partial",
        "syscalls.parts",
    ] {
        std::os::unix::fs::symlink(&victim, run.join(name)).unwrap();
    }
    fs::write(&go, b"go").unwrap();
    let output = wait_with_limit(tracer, Duration::from_secs(60));
    assert!(output.status.success(), "{}", stderr(&output));

    assert_eq!(fs::read(&victim).unwrap(), b"root's");
    let manifest = manifest(&moved);
    assert_eq!(manifest["status"], "complete");
    let rows = read_table(&moved.join("syscalls.parquet"));
    assert!(rows.num_rows() > 0);
    assert_eq!(
        manifest["tables"]["syscalls"]["rows"],
        rows.num_rows() as u64
    );
    // Nothing was created through the links of the swapped-in directory.
    let planted: Vec<_> = fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(planted.len(), 4, "{planted:?}");
}
