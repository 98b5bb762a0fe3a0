//! The `python` tracer: CPython stacks sampled on CPU, and taken off CPU when a thread that
//! blocked in a system call returns from it. The kernel side finds the thread's
//! `PyThreadState` through glibc's thread-specific data (CPython's `autoTSSkey`) and walks the
//! frame chain, emitting (code object, instruction) pairs; userspace names them.

/// Hash map `u32 tgid` -> [`PyProcess`]: target processes with a known interpreter.
pub const PROCS_MAP: &str = "PYTHON_PROCS";
/// Ring buffer of [`PyStackHeader`] records (each followed by its frames) and [`PySample`]s.
pub const SAMPLES_MAP: &str = "PYTHON_SAMPLES";
/// LRU hash map `u64 stack key` -> `u8`: stacks whose frames the loader was sent.
pub const STACKS_SENT_MAP: &str = "PYTHON_STACKS_SENT";
/// Array of one `u64`: the generation mixed into every stack key (see [`STACKS_SENT_MAP`]).
pub const GENERATION_MAP: &str = "PYTHON_GENERATION";
/// Per-CPU array of [`scratch`] slots of [`StackScratch`]: where a stack is walked before it
/// is sent.
pub const SCRATCH_MAP: &str = "PYTHON_SCRATCH";

/// Slots of [`SCRATCH_MAP`]: one per context a walk can interrupt another in.
pub mod scratch {
    /// Programs of a task's own context: system-call tracepoints, uprobes.
    pub const TASK: u32 = 0;
    /// The CPU-clock sampler, which fires in interrupt context, possibly in the middle of a
    /// walk of the task it interrupted.
    pub const INTERRUPT: u32 = 1;
    pub const SLOTS: u32 = 2;
}
/// Global (read-only after load) holding a [`PythonConfig`].
pub const CONFIG_GLOBAL: &str = "PYTHON_CONFIG";

pub const PROCS_MAX: u32 = 4096;
pub const SAMPLES_BYTES: u32 = 8 << 20;
pub const STACKS_SENT_MAX: u32 = 65536;

/// Most frames walked per stack (`--python-depth` may ask for fewer), C-stack shims included.
pub const MAX_WALK: u32 = 1024;
/// Innermost frames kept of a deeper stack.
pub const KEPT_INNER: usize = 192;
/// Outermost frames kept of a deeper stack (a power of two: they are kept in a ring).
pub const KEPT_OUTER: usize = 64;
/// Most frames a stack record carries: the innermost ones, then the outermost ones.
pub const KEPT_FRAMES: usize = KEPT_INNER + KEPT_OUTER;
/// Most bytes of a frame read at once: every field the walk needs lies below this.
pub const FRAME_READ_MAX: u32 = 128;
/// Bytes of a thread's data stack read at once, ending at the frame the walk is at: one read
/// instead of one per frame (each read of user memory costs a helper call and the kernel's
/// check of the destination, more than copying the bytes).
pub const WINDOW_BYTES: u32 = 16384;

/// Ring-buffer record kinds (the first `u32` of each record).
pub mod record {
    /// A [`super::PyStackHeader`] and its frames: sent the first time a stack is seen.
    pub const STACK: u32 = 1;
    /// A [`super::PySample`].
    pub const SAMPLE: u32 = 2;
}

/// Where frame `n` (0 innermost) of a walk is kept in [`StackScratch::frames`]: the first
/// [`KEPT_INNER`] in order, the others in a ring of [`KEPT_OUTER`] that ends up holding the
/// outermost ones.
#[inline(always)]
pub const fn kept_slot(n: u32) -> usize {
    let n = n as usize;
    if n < KEPT_INNER {
        n
    } else {
        KEPT_INNER + ((n - KEPT_INNER) & (KEPT_OUTER - 1))
    }
}

/// Sample kinds.
pub mod kind {
    pub const ON_CPU: u32 = 0;
    /// Blocked in a system call: the stack that made it, weighted by the time off CPU.
    pub const OFF_CPU: u32 = 1;
    /// The stack that made a slow system call (a `syscall_events` row), weighted by its
    /// duration, timed at its return.
    pub const SYSCALL: u32 = 2;
}

/// Hash map `u64 task_struct pointer` -> [`OffCpu`]: target threads that blocked and have not
/// returned to user space since (keyed by task: sched_switch passes the incoming task, not its
/// pid). The hooks' `ThreadCalls::python_blocked` says which threads have an entry.
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
    /// Bytes of a frame read at once, covering every field above (at most [`FRAME_READ_MAX`]).
    pub frame_bytes: u32,
    /// Non-zero: frames lie next to each other in the chunks of the thread's data stack, each
    /// one's caller below it (3.11+), and `tstate → datastack_chunk` is at this offset: the
    /// walk reads up to [`WINDOW_BYTES`] of a chunk at once and finds the next frames in them.
    /// Zero: frames are heap objects, read one at a time.
    pub tstate_datastack_chunk: u32,
    /// `_PyStackChunk` → `previous` (the older chunk), `size` (bytes, header included) and
    /// `data` (where frames start).
    pub chunk_previous: u32,
    pub chunk_size: u32,
    pub chunk_data: u32,
}

/// One frame as the kernel read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyFrame {
    pub code: u64,
    pub instr: u64,
}

/// A stack seen for the first time (since the generation changed), followed in the record by
/// `min(walked, KEPT_FRAMES)` frames: the order of [`kept_slot`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyStackHeader {
    /// [`record::STACK`].
    pub record: u32,
    pub tgid: u32,
    /// The key samples of this stack carry.
    pub key: u64,
    /// Python frames walked; more than [`KEPT_FRAMES`]: the middle ones were cut.
    pub walked: u32,
    /// Non-zero: the walk stopped before the outermost frame (at `--python-depth`).
    pub root_lost: u32,
}

/// One sampled stack: its thread, time, weight and the key of its frames.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PySample {
    /// [`record::SAMPLE`].
    pub record: u32,
    /// [`kind`].
    pub kind: u32,
    /// Kernel monotonic time.
    pub time_ns: u64,
    /// Off-CPU or syscall time (on-CPU samples weigh one period).
    pub weight_ns: u64,
    pub tgid: u32,
    pub tid: u32,
    /// The [`PyStackHeader::key`] of its stack.
    pub key: u64,
}

/// Per-CPU room for walking one stack: the record as it will be sent, and the frame being read.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StackScratch {
    pub header: PyStackHeader,
    pub frames: [PyFrame; KEPT_FRAMES],
    /// The bytes of user memory read last, from `window_start`: a window of a data stack or
    /// one frame. Longer than the most read by twice [`FRAME_READ_MAX`], so that a field read
    /// at any offset below it from any frame inside stays in the buffer.
    pub window: [u8; (WINDOW_BYTES + 2 * FRAME_READ_MAX) as usize],
    /// Where the walk is: kept here rather than on the program's stack, where the verifier
    /// would follow every value it takes through every step of the loop.
    pub cursor: WalkCursor,
    /// Non-zero while a walk uses this slot: a program that finds it set (it preempted
    /// another's walk) takes no stack rather than mix two.
    pub busy: u64,
}

/// What a stack walk has read: the user memory in [`StackScratch::window`], and the data-stack
/// chunks it walks through.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkCursor {
    /// The window holds the user memory `[window_start, window_end)`.
    pub window_start: u64,
    pub window_end: u64,
    /// The chunk the walk is in, and the one older than it (read when a frame is found
    /// outside the first).
    pub chunk: DataStackChunk,
    pub older: DataStackChunk,
}

/// Where one chunk of a thread's data stack keeps frames.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DataStackChunk {
    /// `[frames, end)`; `end` 0: no chunk, or not read yet.
    pub frames: u64,
    pub end: u64,
    /// The older chunk's address; 0 for the oldest.
    pub previous: u64,
}

impl DataStackChunk {
    pub const NONE: DataStackChunk = DataStackChunk {
        frames: 0,
        end: 0,
        previous: 0,
    };

    /// Whether the chunk holds the bytes `[start, end)`.
    #[inline(always)]
    pub fn holds(&self, start: u64, end: u64) -> bool {
        self.end != 0 && start >= self.frames && end <= self.end
    }
}

/// The arguments of the raw `sched_switch` tracepoint since Linux 5.18, as BTF spells their
/// types (the loader checks them against the kernel's `btf_trace_sched_switch` before
/// loading), and the positions the off-CPU program reads: the verifier only lets a program
/// read its context at offsets fixed when it is compiled.
/// The largest `--python-off-cpu-every`, in ns: the kernel scales a 32-bit random draw by it.
pub const OFF_CPU_EVERY_MAX_NS: u64 = 1_000_000_000;

pub mod switch_arg {
    pub const TYPES: [&str; 4] = [
        "bool",
        "struct task_struct *",
        "struct task_struct *",
        "unsigned int",
    ];
    pub const PREEMPT: usize = 0;
    pub const PREV: usize = 1;
    pub const NEXT: usize = 2;
    pub const PREV_STATE: usize = 3;
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
    /// Frames to walk, at most [`MAX_WALK`].
    pub depth: u32,
    pub _pad: u32,
    /// Waits off CPU at least this long are all taken, weighing their length; a shorter one
    /// is taken with probability length / this, weighing this. At most 2^32 ns (the loader
    /// checks), so that the kernel's draw cannot overflow.
    pub off_cpu_every_ns: u64,
}

crate::user_pod!(
    PyProcess,
    PyFrame,
    PyStackHeader,
    PySample,
    PythonConfig,
    OffCpu
);
