//! `--python-calls`: exact Python call counts and times from CPython's USDT probes
//! (`python:function__entry` and `function__return`, in `--with-dtrace` builds). The kernel
//! side keeps a per-thread stack of call start times and aggregates returns per
//! (process, file, function); userspace names the C strings the probes point at.

/// Hash map `u32 tgid` -> [`CallArgs`]: processes whose probes are armed, and where their
/// probe arguments are.
pub const ARGS_MAP: &str = "PYTHON_CALL_ARGS";
/// LRU hash map `u32 tid` -> [`CallStack`].
pub const STACKS_MAP: &str = "PYTHON_CALL_STACKS";
/// Per-CPU array of one zeroed [`CallStack`]: the value a thread's first call inserts (too big
/// for the BPF stack).
pub const EMPTY_STACK_MAP: &str = "PYTHON_CALL_EMPTY_STACK";
/// Per-CPU hash map [`CallKey`] -> [`CallStats`], cumulative since the start of the run.
pub const STATS_MAP: &str = "PYTHON_CALL_STATS";

pub const ARGS_MAX: u32 = 4096;
pub const STACKS_MAX: u32 = 4096;
pub const STATS_MAX: u32 = 16384;
/// Calls nested deeper than this in one thread are counted but not timed.
pub const STACK_DEPTH: usize = 64;

/// Where a process's probes find their arguments: byte offsets in `struct pt_regs` (BTF) of
/// the registers the USDT argument specs name.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallArgs {
    /// Argument 1: `const char *filename`.
    pub filename: u32,
    /// Argument 2: `const char *funcname`.
    pub funcname: u32,
}

/// A thread's Python calls in progress, outermost first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallStack {
    /// Calls entered and not yet returned (may exceed [`STACK_DEPTH`]).
    pub depth: u32,
    pub _pad: u32,
    /// Kernel monotonic time each call started.
    pub start_ns: [u64; STACK_DEPTH],
}

/// One function of one process: the addresses of its file and function names (C strings in
/// the process, stable while its code object lives).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    pub tgid: u32,
    pub _pad: u32,
    pub filename: u64,
    pub funcname: u64,
}

/// Returns of one function on one CPU, since the start of the run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    pub calls: u64,
    /// Over the timed calls (those that began while traced, within [`STACK_DEPTH`]).
    pub total_ns: u64,
    pub max_ns: u64,
}

crate::user_pod!(CallArgs, CallStack, CallKey, CallStats);
