//! What each eBPF program cost the kernel (`--bpf-stats`): how often it ran and for how long,
//! as the kernel counts it once statistics are enabled (BPF_ENABLE_STATS, held for the run).
//! Counting costs two clock reads per program run, so it is off unless asked for. The runs the
//! kernel skipped (a program already running on that CPU) it counts always: they are events
//! lost, reported with every tracer's drops.

use std::{
    collections::BTreeMap,
    fs,
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    sys::{Stats, enable_stats},
};
use tracers::{catalogue, hooks};

use crate::run::manifest::ProgramCost;

/// Kernel statistics of every program, enabled while this lives.
pub struct ProgramStats {
    _enabled: OwnedFd,
}

impl ProgramStats {
    pub fn enable() -> Result<Self> {
        let enabled = enable_stats(Stats::RunTime)
            .context("enabling eBPF run-time statistics (BPF_ENABLE_STATS, Linux 5.8+)")?;
        Ok(Self { _enabled: enabled })
    }

    /// The cost of each loaded program of `tracer`, by program name.
    pub fn of(&self, ebpf: &Ebpf, tracer: &str) -> BTreeMap<&'static str, ProgramCost> {
        costs(ebpf, tracer)
    }

    /// The cost of each loaded program that several tracers share (the system-call hooks).
    pub fn shared(&self, ebpf: &Ebpf) -> BTreeMap<&'static str, ProgramCost> {
        costs_of(ebpf, hooks::program::ALL)
    }
}

/// Runs of `tracer`'s programs the kernel skipped because the program was already running on
/// that CPU: events they never saw. The kernel counts these whether statistics are on or not.
/// A tracer that works through the system-call hooks (`hooked`) missed theirs too.
pub fn runs_skipped(ebpf: &Ebpf, tracer: &str, hooked: bool) -> u64 {
    let shared = if hooked {
        costs_of(ebpf, hooks::program::ALL)
    } else {
        BTreeMap::new()
    };
    costs(ebpf, tracer)
        .values()
        .chain(shared.values())
        .map(|cost| cost.recursion_misses)
        .sum()
}

/// What the kernel counted for each loaded program of `tracer`.
fn costs(ebpf: &Ebpf, tracer: &str) -> BTreeMap<&'static str, ProgramCost> {
    catalogue::find(tracer).map_or_else(BTreeMap::new, |info| costs_of(ebpf, info.programs))
}

/// What the kernel counted for each of `programs` that is loaded.
fn costs_of(ebpf: &Ebpf, programs: &[&'static str]) -> BTreeMap<&'static str, ProgramCost> {
    programs
        .iter()
        .filter_map(|&name| {
            let fd = ebpf.program(name)?.fd().ok()?;
            let fdinfo =
                fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd())).ok()?;
            Some((name, parse_fdinfo(&fdinfo)))
        })
        .collect()
}

/// The counters of a program's `/proc/PID/fdinfo/FD`.
fn parse_fdinfo(fdinfo: &str) -> ProgramCost {
    let mut cost = ProgramCost::default();
    for line in fdinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(value) = value.trim().parse() else {
            continue;
        };
        match key {
            "run_cnt" => cost.runs = value,
            "run_time_ns" => cost.run_time_ns = value,
            "recursion_misses" => cost.recursion_misses = value,
            _ => {}
        }
    }
    cost
}

/// The summary's line for a tracer's programs: their runs and kernel time together.
pub fn summary_line(programs: &BTreeMap<&'static str, ProgramCost>) -> Option<String> {
    if programs.is_empty() {
        return None;
    }
    let runs: u64 = programs.values().map(|c| c.runs).sum();
    let time_ns: u64 = programs.values().map(|c| c.run_time_ns).sum();
    let misses: u64 = programs.values().map(|c| c.recursion_misses).sum();
    let per_run = time_ns.checked_div(runs).unwrap_or(0);
    let mut line = format!(
        "  kernel: {:.1} ms in {runs} program runs ({per_run} ns a run)",
        time_ns as f64 / 1e6
    );
    if misses > 0 {
        line += &format!(", {misses} runs skipped (recursion)");
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_counters_are_read_by_name() {
        let fdinfo = "pos:\t0\nflags:\t02000002\nprog_type:\t17\nprog_tag:\tab12\n\
                      run_time_ns:\t1500\nrun_cnt:\t3\nrecursion_misses:\t1\nverified_insns:\t9\n";
        assert_eq!(
            parse_fdinfo(fdinfo),
            ProgramCost {
                runs: 3,
                run_time_ns: 1500,
                recursion_misses: 1
            }
        );
    }

    #[test]
    fn the_summary_adds_up_a_tracers_programs() {
        let programs = BTreeMap::from([
            (
                "a",
                ProgramCost {
                    runs: 3,
                    run_time_ns: 600_000,
                    recursion_misses: 0,
                },
            ),
            (
                "b",
                ProgramCost {
                    runs: 1,
                    run_time_ns: 400_000,
                    recursion_misses: 2,
                },
            ),
        ]);
        assert_eq!(
            summary_line(&programs).as_deref(),
            Some(
                "  kernel: 1.0 ms in 4 program runs (250000 ns a run), 2 runs skipped (recursion)"
            )
        );
        assert_eq!(summary_line(&BTreeMap::new()), None);
    }
}
