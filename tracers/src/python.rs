//! The `python` tracer: CPython stacks sampled on CPU, and taken off CPU when a thread that
//! blocked in a system call returns from it. The kernel side finds the thread's
//! `PyThreadState` through glibc's thread-specific data (CPython's `autoTSSkey`) and walks the
//! frame chain, emitting (code object, instruction) pairs; userspace names them.

/// Hash map `u32 tgid` -> [`PyProcess`]: target processes with a known interpreter.
pub const PROCS_MAP: &str = "PYTHON_PROCS";
/// Ring buffer of [`PySample`].
pub const SAMPLES_MAP: &str = "PYTHON_SAMPLES";
/// Global (read-only after load) holding a [`PythonConfig`].
pub const CONFIG_GLOBAL: &str = "PYTHON_CONFIG";

pub const PROCS_MAX: u32 = 4096;
pub const SAMPLES_BYTES: u32 = 8 << 20;
/// Most frames a sample holds (`--python-depth` may ask for fewer).
pub const MAX_FRAMES: usize = 128;

/// Sample kinds.
pub mod kind {
    pub const ON_CPU: u32 = 0;
    /// Blocked in a system call: the stack that made it, weighted by the time off CPU.
    pub const OFF_CPU: u32 = 1;
    /// The stack that made a slow system call (a `syscall_events` row), weighted by its
    /// duration, timed at its return.
    pub const SYSCALL: u32 = 2;
}

/// Hash map `u32 tid` -> [`OffCpu`]: target threads that blocked and have not returned to
/// user space since.
pub const OFF_CPU_MAP: &str = "PYTHON_OFF_CPU";
pub const OFF_CPU_MAX: u32 = 16384;

/// A target thread's time off CPU since it entered its current system call: the periods it
/// was switched out add up (a wait may sleep and wake several times).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OffCpu {
    /// When the current period began; 0 while the thread is on CPU.
    pub start_ns: u64,
    /// The periods that ended.
    pub total_ns: u64,
}

/// How to walk one process's interpreter (from its CPython version's layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyProcess {
    /// pthread key of CPython's `autoTSSkey`: the thread's `PyThreadState*` is its value.
    pub tss_key: u32,
    /// tstate -> top frame (or -> cframe when `cframe_current_frame` is used).
    pub tstate_frame: u32,
    /// Non-zero: the value at `tstate_frame` is a `_PyCFrame*`, whose current frame is at
    /// `cframe_current_frame - 1` (3.11, 3.12).
    pub cframe_current_frame: u32,
    pub frame_code: u32,
    pub frame_previous: u32,
    /// f_lasti (an int) or prev_instr/instr_ptr (a pointer); userspace knows which.
    pub frame_instr: u32,
    /// Non-zero: frames whose byte at `frame_owner - 1` equals `owner_c_stack` are C-stack
    /// shims, not Python code (3.12+).
    pub frame_owner: u32,
    pub owner_c_stack: u32,
}

/// One frame as the kernel read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyFrame {
    pub code: u64,
    pub instr: u64,
}

/// One sampled stack, innermost frame first.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PySample {
    /// Kernel monotonic time.
    pub time_ns: u64,
    /// Off-CPU time for `kind::OFF_CPU` samples (on-CPU samples weigh one period).
    pub weight_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    pub kind: u32,
    pub depth: u32,
    /// Non-zero: the stack was deeper than the frames kept.
    pub truncated: u32,
    pub _pad: u32,
    pub frames: [PyFrame; MAX_FRAMES],
}

/// Load-time configuration of the python tracer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PythonConfig {
    /// Offset of `thread.fsbase` in `task_struct` (BTF): the thread pointer, which on x86_64
    /// glibc is the thread's `struct pthread`.
    pub task_fsbase: u32,
    /// Offset in `struct pthread` of `specific_1stblock` (measured in the loader's own thread
    /// at load time): key k's value is at `+ 16 * k + 8`.
    pub pthread_specific: u32,
    /// Frames to walk, at most [`MAX_FRAMES`].
    pub depth: u32,
    /// Offsets of `prev_state` and `next_pid` in `sched:sched_switch` records.
    pub switch_prev_state: u32,
    pub switch_next_pid: u32,
    pub _pad: u32,
    /// Off-CPU periods shorter than this are not sampled.
    pub off_cpu_min_ns: u64,
}

crate::user_pod!(PyProcess, PyFrame, PySample, PythonConfig, OffCpu);
