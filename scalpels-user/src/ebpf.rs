//! The eBPF object built from `scalpels-ebpf`, and the programs every run attaches.

use std::path::Path;

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::Map,
    programs::{Program, RawTracePoint, TracePoint},
};
use tracers::catalogue;

use crate::tracefs;

/// The compiled programs, embedded at build time (see build.rs).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/scalpels"));

/// Byte offset of `child_pid` in `sched_process_fork` records, for the fork-following program.
pub fn fork_child_pid_offset(tracefs: &Path) -> Result<u32> {
    tracefs::field_offset(tracefs, "sched", "sched_process_fork", "child_pid")
}

/// Offset of `group_dead` in `sched_process_exit` records; 0 on kernels whose records have
/// none.
pub fn exit_group_dead_offset(tracefs: &Path) -> u32 {
    tracefs::field_offset(tracefs, "sched", "sched_process_exit", "group_dead").unwrap_or(0)
}

/// The programs that keep the target set current across forks and exits.
const TARGET_PROGRAMS: [(&str, &str); 2] = [
    ("target_fork", "sched_process_fork"),
    ("target_exit", "sched_process_exit"),
];

/// Attaches the programs that keep the target set current across forks and exits.
pub fn attach_target_programs(ebpf: &mut Ebpf) -> Result<()> {
    for (program, tracepoint) in TARGET_PROGRAMS {
        attach_tracepoint(ebpf, program, [("sched", tracepoint)])?;
    }
    Ok(())
}

/// Takes map `name` out of the object, for a tracer to own.
pub fn take_map(ebpf: &mut Ebpf, name: &str) -> Result<Map> {
    ebpf.take_map(name)
        .with_context(|| format!("eBPF object has no map {name}"))
}

/// Loads tracepoint program `program` and attaches it to each (category, event).
pub fn attach_tracepoint<C: AsRef<str>, E: AsRef<str>>(
    ebpf: &mut Ebpf,
    program: &str,
    events: impl IntoIterator<Item = (C, E)>,
) -> Result<()> {
    let prog: &mut TracePoint = ebpf
        .program_mut(program)
        .with_context(|| format!("eBPF object has no program {program}"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {program}"))?;
    for (category, event) in events {
        let (category, event) = (category.as_ref(), event.as_ref());
        prog.attach(category, event)
            .with_context(|| format!("attaching {program} to tracepoint {category}:{event}"))?;
    }
    Ok(())
}

/// Loads and attaches raw-tracepoint programs: (program, tracepoint) pairs.
pub fn attach_raw_tracepoints(ebpf: &mut Ebpf, programs: &[(&str, &str)]) -> Result<()> {
    for &(program, tracepoint) in programs {
        let prog: &mut RawTracePoint = ebpf
            .program_mut(program)
            .with_context(|| format!("eBPF object has no program {program}"))?
            .try_into()?;
        prog.load().with_context(|| format!("loading {program}"))?;
        prog.attach(tracepoint)
            .with_context(|| format!("attaching {program} to raw tracepoint {tracepoint}"))?;
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
            Some(Program::UProbe(p)) => p.unload(),
            _ => Ok(()),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind};
    use tracers::{counters, hooks, target};

    use super::*;

    /// The names userspace looks things up by, against the built object: every map, ring
    /// buffer, program and global the catalogue and the shared parts name is defined there, and
    /// every program of the object is one of those.
    #[test]
    fn the_catalogue_names_what_the_ebpf_object_defines() {
        let file = object::File::parse(OBJECT).unwrap();
        let defined: BTreeSet<&str> = file.symbols().filter_map(|s| s.name().ok()).collect();
        let mut named: Vec<&str> = vec![
            counters::COUNTERS_MAP,
            target::TARGET_TGIDS_MAP,
            target::TARGET_CGROUPS_MAP,
            target::TARGET_CONFIG_GLOBAL,
            hooks::CONFIG_GLOBAL,
            hooks::ON_MAP,
            hooks::THREADS_MAP,
        ];
        let mut programs: BTreeSet<&str> = hooks::program::ALL.iter().copied().collect();
        programs.extend(TARGET_PROGRAMS.map(|(program, _)| program));
        for tracer in catalogue::TRACERS {
            named.extend(tracer.maps.iter().chain(tracer.ring_buffers));
            programs.extend(tracer.programs);
        }
        for name in named.iter().chain(&programs) {
            assert!(defined.contains(name), "the eBPF object has no {name}");
        }
        // Programs are the functions in the sections their kind names (`tracepoint/...`).
        let in_object: BTreeSet<&str> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.is_global())
            .filter(|s| {
                s.section_index()
                    .and_then(|i| file.section_by_index(i).ok())
                    .and_then(|section| section.name().ok().map(str::to_owned))
                    .is_some_and(|name| !name.starts_with('.'))
            })
            .filter_map(|s| s.name().ok())
            .collect();
        assert_eq!(in_object, programs);
    }
}
