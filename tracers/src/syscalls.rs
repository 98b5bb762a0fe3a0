//! The `syscalls` tracer: per (process, thread, syscall) counters and latency histograms
//! aggregated in the kernel, plus one event for every call slower than a threshold.

use crate::histogram::HIST_SLOTS;

/// Hash map [`SyscallKey`] -> [`SyscallStats`], cumulative since attach.
pub const STATS_MAP: &str = "SYSCALL_STATS";
/// Ring buffer of [`SlowSyscallEvent`].
pub const EVENTS_MAP: &str = "SYSCALL_EVENTS";
/// Array with one `u64`: the interval number userspace is collecting, which resets `max_ns`.
pub const INTERVAL_MAP: &str = "SYSCALL_INTERVAL";
/// The tracer's own program (its system-call work runs in the [`crate::hooks`]): raw
/// tracepoint `sched_process_exec`.
pub mod program {
    pub const EXEC: &str = "syscalls_exec";
}
/// Global (read-only after load) holding a [`SyscallsConfig`].
pub const CONFIG_GLOBAL: &str = "SYSCALLS_CONFIG";

pub const STATS_MAX: u32 = 32768;
pub const EVENTS_BYTES: u32 = 1 << 20;

/// Number of syscall arguments recorded for slow calls.
pub const ARGS: usize = crate::hooks::ARGS;

/// Aggregation key: one row per interval per key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    pub tgid: u32,
    pub tid: u32,
    pub nr: u32,
    /// Execs the thread made while traced: calls after an exec get new entries, so each
    /// entry's `comm` names the program that made its calls.
    pub exec: u32,
}

/// Cumulative statistics of one key. Only the thread of the key writes it, so plain adds are
/// exact; userspace takes differences between two reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallStats {
    pub count: u64,
    /// Calls that returned an error (-4095..=-1).
    pub errors: u64,
    pub total_ns: u64,
    /// Longest call that ended in interval `max_interval`.
    pub max_ns: u64,
    pub max_interval: u64,
    pub comm: [u8; 16],
    pub hist: [u64; HIST_SLOTS],
}

impl Default for SyscallStats {
    fn default() -> Self {
        Self {
            count: 0,
            errors: 0,
            total_ns: 0,
            max_ns: 0,
            max_interval: 0,
            comm: [0; 16],
            hist: [0; HIST_SLOTS],
        }
    }
}

/// The syscall a target thread is in (`start_ns == 0`: none), and its exec count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallInflight {
    pub start_ns: u64,
    pub nr: u32,
    pub exec: u32,
}

/// A call slower than [`SyscallsConfig::slow_ns`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowSyscallEvent {
    /// Kernel monotonic time at return.
    pub end_ns: u64,
    pub duration_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub nr: u32,
    /// Non-zero: a Python stack sample of kind `python::kind::SYSCALL` with this `tid` and
    /// `end_ns` as its time was sent too (the caller is a known CPython process).
    pub python_stack: u32,
    pub ret: i64,
    pub args: [u64; ARGS],
    pub comm: [u8; 16],
}

/// Load-time configuration of the syscalls tracer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallsConfig {
    /// Calls at least this long (ns) are also sent as [`SlowSyscallEvent`]s.
    pub slow_ns: u64,
}

crate::user_pod!(
    SyscallKey,
    SyscallStats,
    SyscallInflight,
    SlowSyscallEvent,
    SyscallsConfig
);
