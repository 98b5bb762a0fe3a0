//! The tracers Scalpels knows, in the order they attach. Adding a tracer adds a line here.

use crate::{
    block, files,
    protocols::{self, sqlite, tls},
    python, python_calls, syscalls,
};

/// A tracer, as the CLI and the manifest name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracerInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// Parquet tables (file stems) the tracer writes.
    pub tables: &'static [&'static str],
    /// Its eBPF maps: shrunk to nothing when the tracer is not running, so a run pays kernel
    /// memory only for the tracers it uses.
    pub maps: &'static [&'static str],
    /// Those of its maps that are ring buffers (their smallest size is a page).
    pub ring_buffers: &'static [&'static str],
    /// Its eBPF programs: unloaded (and so detached) if the tracer fails half-way through
    /// attaching, so an unavailable tracer costs nothing. Its system-call work, if any, runs in
    /// the programs of [`crate::hooks`], which it shares.
    pub programs: &'static [&'static str],
}

pub const TRACERS: &[TracerInfo] = &[
    TracerInfo {
        name: "syscalls",
        summary: "system calls: counts, errors and latency histograms per thread, and slow calls",
        tables: &["syscalls", "syscall_events"],
        maps: &[syscalls::STATS_MAP, syscalls::INTERVAL_MAP],
        ring_buffers: &[syscalls::EVENTS_MAP],
        programs: &[syscalls::program::EXEC],
    },
    TracerInfo {
        name: "block",
        summary: "block I/O requests: device, operation, bytes, queue and service latency",
        tables: &["block_io", "block_io_stats"],
        maps: &[block::INFLIGHT_MAP, block::STATS_MAP],
        ring_buffers: &[block::EVENTS_MAP],
        programs: &["block_start", "block_issue", "block_done"],
    },
    TracerInfo {
        name: "files",
        summary: "file-system I/O on regular files: calls, bytes, latency per file, slow operations",
        tables: &["file_io", "file_io_events"],
        maps: &[files::SYSCALLS_MAP, files::STATS_MAP, files::INTERVAL_MAP],
        ring_buffers: &[files::EVENTS_MAP],
        programs: &[],
    },
    TracerInfo {
        name: "protocols",
        summary: "socket conversations: connections with addresses and bytes; SQL, HTTP and RPC over them, with latency",
        tables: &["connections", "sql", "http", "rpc", "cache"],
        maps: &[
            protocols::SYSCALLS_MAP,
            protocols::CONNS_MAP,
            protocols::PROCS_MAP,
            protocols::SCRATCH_MAP,
            sqlite::LIBS_MAP,
            sqlite::PREPARING_MAP,
            sqlite::STEPPING_MAP,
            sqlite::RUNS_MAP,
            tls::FDS_MAP,
        ],
        ring_buffers: &[protocols::EVENTS_MAP, sqlite::EVENTS_MAP],
        programs: &[
            "protocols_process_exit",
            sqlite::program::PREPARE_V2,
            sqlite::program::PREPARE_V3,
            sqlite::program::PREPARE_RETURN,
            sqlite::program::STEP,
            sqlite::program::STEP_RETURN,
            sqlite::program::RESET,
            sqlite::program::FINALIZE,
            sqlite::program::ERRMSG_RETURN,
            sqlite::program::CHANGES_RETURN,
            tls::program::READ,
            tls::program::READ_EX,
            tls::program::WRITE,
            tls::program::WRITE_EX,
            tls::program::HANDSHAKE,
            tls::program::SET_FD,
            tls::program::FREE,
            tls::program::RETURN,
        ],
    },
    TracerInfo {
        name: "proc",
        summary: "/proc sampled every interval: per-process CPU, memory, I/O, faults; system CPU, memory, load, disks, network",
        tables: &["proc_stats", "system_stats", "disk_stats", "net_stats"],
        maps: &[],
        ring_buffers: &[],
        programs: &[],
    },
    TracerInfo {
        name: "python",
        summary: "CPython stacks on CPU (sampled) and off CPU (blocked in syscalls), with file and line",
        tables: &["python_samples", "python_stacks", "python_calls"],
        maps: &[
            python::PROCS_MAP,
            python::OFF_CPU_MAP,
            python_calls::ARGS_MAP,
            python_calls::STACKS_MAP,
            python_calls::EMPTY_STACK_MAP,
            python_calls::STATS_MAP,
        ],
        ring_buffers: &[python::SAMPLES_MAP],
        programs: &[
            "python_sample",
            "python_switch",
            "python_call_entry",
            "python_call_return",
        ],
    },
];

/// Looks a tracer up by name.
pub fn find(name: &str) -> Option<&'static TracerInfo> {
    TRACERS.iter().find(|t| t.name == name)
}
