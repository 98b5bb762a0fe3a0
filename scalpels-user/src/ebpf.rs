//! The eBPF object built from `scalpels-ebpf`, and the programs every run attaches.

use std::path::Path;

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    programs::{Program, TracePoint},
};
use tracers::catalogue;

use crate::tracefs;

/// The compiled programs, embedded at build time (see build.rs).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/scalpels"));

/// Byte offset of `child_pid` in `sched_process_fork` records, for the fork-following program.
pub fn fork_child_pid_offset(tracefs: &Path) -> Result<u32> {
    tracefs::field_offset(tracefs, "sched", "sched_process_fork", "child_pid")
}

/// Attaches the programs that keep the target set current across forks and exits.
pub fn attach_target_programs(ebpf: &mut Ebpf) -> Result<()> {
    for (program, event) in [
        ("target_fork", "sched_process_fork"),
        ("target_exit", "sched_process_exit"),
    ] {
        let prog: &mut TracePoint = ebpf
            .program_mut(program)
            .with_context(|| format!("eBPF object has no program {program}"))?
            .try_into()?;
        prog.load().with_context(|| format!("loading {program}"))?;
        prog.attach("sched", event)
            .with_context(|| format!("attaching {program} to tracepoint sched:{event}"))?;
    }
    Ok(())
}

/// Detaches and unloads the programs of `tracer`, after it failed to attach some of them.
pub fn unload_programs(ebpf: &mut Ebpf, tracer: &str) {
    let Some(info) = catalogue::find(tracer) else {
        return;
    };
    for name in info.programs {
        // Errors here only mean the program was never loaded.
        let _ = match ebpf.program_mut(name) {
            Some(Program::TracePoint(p)) => p.unload(),
            Some(Program::RawTracePoint(p)) => p.unload(),
            Some(Program::PerfEvent(p)) => p.unload(),
            _ => Ok(()),
        };
    }
}
