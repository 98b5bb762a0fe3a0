//! What the loader itself can take: a stress of one event per system call, and the protocol
//! parsers' throughput.

use std::{fs, path::Path, process::Stdio};

use anyhow::{Context as _, Result, bail};

use super::{
    Options,
    micro::{Bench, Way},
};
use crate::cmd;

/// Every call a slow-call event (`--slow-syscall 0ns`): ring-buffer and Parquet throughput,
/// the loader's memory, and whether anything was lost.
pub fn stress(bench: &Bench, workload: &[String], opts: &Options) -> Result<String> {
    let mut out = String::from(
        "\n### Loader\n\n| scenario | workload ns/call | events written | events dropped | loader peak RSS |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    for (scenario, extra) in [
        ("aggregation only (default)", &[][..]),
        (
            "every call an event (--slow-syscall 0ns)",
            &["--slow-syscall", "0ns"][..],
        ),
    ] {
        let _ = fs::remove_dir_all(bench.dir.join("runs"));
        eprintln!("xtask: bench: loader: {scenario}");
        let m = bench.measure(&bench.argv(Way::Scalpels("syscalls", &[]), workload, extra))?;
        let manifest = only_manifest(&bench.dir.join("runs"))?;
        let events = manifest["tables"]["syscall_events"]["rows"]
            .as_u64()
            .context("manifest has no syscall_events rows")?;
        let dropped = manifest["tracers"][0]["drops"]["events_dropped"]
            .as_u64()
            .context("manifest has no events_dropped counter")?;
        out += &format!(
            "| {scenario} | {:.1} | {events} | {dropped} | {:.1} MiB |\n",
            m.ns_per_op,
            m.max_rss_kib as f64 / 1024.0
        );
    }
    out += &format!(
        "\n(Repeats: 1 each; {} calls; peak RSS is of scalpels-trace and its waited-for \
         children, the workload being a few hundred KiB.)\n",
        opts.calls
    );
    Ok(out)
}

/// The protocol parsers' speed on the recorded conversations of `wire/tests/fixtures`: what
/// the loader can decode per second of one core.
pub fn parser_throughput() -> Result<String> {
    eprintln!("xtask: bench: protocol parsers");
    // The test binary's arguments after cargo's own (`--release` is appended to those).
    let output = cmd::cargo_command(&["test", "-q", "-p", "wire", "--test", "throughput"], true)
        .args(["--", "--ignored", "--nocapture"])
        .stderr(Stdio::inherit())
        .output()
        .context("running wire's throughput measurement")?;
    if !output.status.success() {
        bail!("wire's throughput measurement failed ({})", output.status);
    }
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("MB/s"))
        .map(|line| format!("    {}", line.trim()))
        .collect();
    Ok(format!(
        "\n### Protocol parsers (release build, one core, captured payload)\n\n{}\n",
        lines.join("\n")
    ))
}

fn only_manifest(runs: &Path) -> Result<serde_json::Value> {
    let run = fs::read_dir(runs)?
        .next()
        .context("the benchmark run wrote no run directory")??;
    let text = fs::read_to_string(run.path().join("manifest.json"))?;
    Ok(serde_json::from_str(&text)?)
}
