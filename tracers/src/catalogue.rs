//! The tracers Scalpels knows, in the order they attach. Adding a tracer adds a line here.

/// A tracer, as the CLI and the manifest name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TracerInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// Parquet tables (file stems) the tracer writes.
    pub tables: &'static [&'static str],
}

pub const TRACERS: &[TracerInfo] = &[
    TracerInfo {
        name: "syscalls",
        summary: "system calls: counts, errors and latency histograms per thread, and slow calls",
        tables: &["syscalls", "syscall_events"],
    },
    TracerInfo {
        name: "block",
        summary: "block I/O requests: device, operation, bytes, queue and service latency",
        tables: &["block_io", "block_io_stats"],
    },
    TracerInfo {
        name: "files",
        summary: "file-system I/O on regular files: calls, bytes, latency per file, slow operations",
        tables: &["file_io", "file_io_events"],
    },
    TracerInfo {
        name: "proc",
        summary: "/proc sampled every interval: per-process CPU, memory, I/O, faults; system CPU, memory, load, disks, network",
        tables: &["proc_stats", "system_stats", "disk_stats", "net_stats"],
    },
];

/// Looks a tracer up by name.
pub fn find(name: &str) -> Option<&'static TracerInfo> {
    TRACERS.iter().find(|t| t.name == name)
}
