//! The `python` tracer: a perf_event program sampling every CPU; when the interrupted thread
//! belongs to a target running CPython, it walks the thread's frames (offsets of that process's
//! CPython version, from userspace) and sends a sample. Off CPU: sched_switch notes when a
//! target thread blocks and when it runs again; back from the system call it blocked in, its
//! stack is taken, weighted by the time it was off CPU.
//!
//! A stack's frames cross the ring buffer once: each walk hashes its (code, instruction) pairs
//! into a key, and only a key not in `PYTHON_STACKS_SENT` sends the frames; every sample
//! carries just the key. Stacks deeper than the frames kept lose their middle, never their
//! root: the innermost and the outermost frames are kept.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_prandom_u32, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_probe_read_user, generated,
    },
    macros::{map, perf_event, raw_tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{PerfEventContext, RawTracePointContext},
};
use tracers::{
    counters::Counter,
    hooks::ThreadCalls,
    python::{
        DataStackChunk, FRAME_READ_MAX, KEPT_FRAMES, KEPT_OUTER, MAX_WALK, OFF_CPU_MAX, OffCpu,
        PROCS_MAX, PyFrame, PyProcess, PySample, PyStackHeader, PythonConfig, SAMPLES_BYTES,
        STACKS_SENT_MAX, StackScratch, WINDOW_BYTES, WalkCursor, kept_slot, kind, record, scratch,
        switch_arg,
    },
};

use crate::{counters::bump, hooks::HOOKS_THREADS, target::is_target, wakeup};

const _: () = assert!(
    KEPT_OUTER.is_power_of_two()
        && FRAME_READ_MAX.is_power_of_two()
        && WINDOW_BYTES.is_power_of_two()
);

/// Samples of waits or calls at least this long wake the loader at once.
const PROMPT_AFTER_NS: u64 = 1_000_000;

#[map]
static PYTHON_PROCS: HashMap<u32, PyProcess> = HashMap::with_max_entries(PROCS_MAX, 0);

#[map]
static PYTHON_SAMPLES: RingBuf = RingBuf::with_byte_size(SAMPLES_BYTES, 0);

#[map]
static PYTHON_STACKS_SENT: LruHashMap<u64, u8> = LruHashMap::with_max_entries(STACKS_SENT_MAX, 0);

#[map]
static PYTHON_GENERATION: Array<u64> = Array::with_max_entries(1, 0);

#[map]
static PYTHON_SCRATCH: PerCpuArray<StackScratch> = PerCpuArray::with_max_entries(scratch::SLOTS, 0);

#[map]
static PYTHON_OFF_CPU: HashMap<u64, OffCpu> = HashMap::with_max_entries(OFF_CPU_MAX, 0);

#[unsafe(no_mangle)]
static PYTHON_CONFIG: PythonConfig = PythonConfig {
    task_fsbase: 0,
    pthread_specific: 0,
    depth: 0,
    _pad: 0,
    off_cpu_every_ns: u64::MAX,
};

#[inline(always)]
fn config() -> PythonConfig {
    // SAFETY: read of our own global, volatile so the loader's value is used.
    unsafe { core::ptr::read_volatile(&PYTHON_CONFIG) }
}

/// Reads a `T` at `base + offset` in the current process's memory.
#[inline(always)]
fn read_user<T>(base: u64, offset: u32) -> Option<T> {
    // SAFETY: a checked read; an unmapped or paged-out address fails instead of faulting.
    unsafe { bpf_probe_read_user((base + u64::from(offset)) as *const T) }.ok()
}

/// The `PyThreadState*` of the current thread: its value for CPython's pthread key.
#[inline(always)]
fn thread_state(config: &PythonConfig, process: &PyProcess) -> Option<u64> {
    // SAFETY: helper without arguments; the offset comes from BTF.
    let task = unsafe { bpf_get_current_task() };
    let fsbase: u64 =
        unsafe { bpf_probe_read_kernel((task + u64::from(config.task_fsbase)) as *const u64) }
            .ok()?;
    let slot = config.pthread_specific + 16 * process.tss_key + 8;
    let tstate: u64 = read_user(fsbase, slot)?;
    (tstate != 0).then_some(tstate)
}

/// A `T` at `offset` (below [`FRAME_READ_MAX`]) in the frame that starts `at` bytes into the
/// window.
#[inline(always)]
fn frame_field<T: Copy>(scratch: *const StackScratch, at: u64, offset: u32) -> T {
    // The masks keep the read inside `window` (longer than WINDOW_BYTES by twice
    // FRAME_READ_MAX) for the verifier.
    let at = at as usize & (WINDOW_BYTES as usize - 1);
    let offset = offset as usize & (FRAME_READ_MAX as usize - 1);
    // SAFETY: within this CPU's scratch, which no other program uses while we run.
    unsafe {
        (*scratch)
            .window
            .as_ptr()
            .add(at + offset)
            .cast::<T>()
            .read_unaligned()
    }
}

/// Mixes one word into a stack key.
#[inline(always)]
fn mix(key: u64, word: u64) -> u64 {
    let key = (key ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    key ^ (key >> 29)
}

/// Walks the current thread's Python stack into this CPU's scratch: the key of its frames, or
/// `None` outside Python code.
#[inline(always)]
fn walk(
    scratch: *mut StackScratch,
    config: &PythonConfig,
    process: &PyProcess,
    tgid: u32,
) -> Option<u64> {
    let tstate = thread_state(config, process)?;
    let mut frame = read_user::<u64>(tstate, process.tstate_frame)?;
    if process.cframe_current_frame != 0 && frame != 0 {
        frame = read_user(frame, process.cframe_current_frame - 1).unwrap_or(0);
    }
    if frame == 0 {
        return None;
    }
    let generation = PYTHON_GENERATION.get(0).copied().unwrap_or(0);
    let mut walk = Walk {
        frame,
        key: mix(mix(0, generation), u64::from(tgid)),
        scratch,
        depth: config.depth,
        read_bytes: process.frame_bytes & (2 * FRAME_READ_MAX - 1),
        frame_code: process.frame_code,
        frame_instr: process.frame_instr,
        frame_previous: process.frame_previous,
        frame_owner: process.frame_owner,
        owner_c_stack: process.owner_c_stack,
        chunk_previous: process.chunk_previous,
        chunk_size: process.chunk_size,
        chunk_data: process.chunk_data,
    };
    let newest = match process.tstate_datastack_chunk {
        0 => 0,
        offset => read_user::<u64>(tstate, offset).unwrap_or(0),
    };
    // SAFETY: this CPU's scratch is ours until the program returns.
    unsafe {
        (*scratch).header.walked = 0;
        (*scratch).cursor = WalkCursor {
            window_start: 0,
            window_end: 0,
            chunk: chunk_at(&walk, newest),
            older: DataStackChunk::NONE,
        };
    }
    // bpf_loop: the verifier checks one step, not MAX_WALK copies of it in every program that
    // takes stacks (an unrolled or bounded loop of 1024 steps took a minute to load).
    // SAFETY: the callback is a BPF function of this object; `walk` outlives the call.
    unsafe {
        generated::bpf_loop(
            MAX_WALK,
            walk_step as *mut c_void,
            (&raw mut walk).cast(),
            0,
        )
    };
    // SAFETY: as above.
    let walked = unsafe { (*scratch).header.walked };
    if walked == 0 {
        return None;
    }
    // SAFETY: as above.
    unsafe { (*scratch).header.root_lost = u32::from(walk.frame != 0) };
    Some(mix(walk.key, u64::from(walked)))
}

/// The state of a stack walk, shared with each of its steps (what changes as it reads memory
/// is in the scratch's [`WalkCursor`]).
#[repr(C)]
struct Walk {
    /// The next frame to read; 0 past the outermost.
    frame: u64,
    key: u64,
    scratch: *mut StackScratch,
    depth: u32,
    read_bytes: u32,
    frame_code: u32,
    frame_instr: u32,
    frame_previous: u32,
    frame_owner: u32,
    owner_c_stack: u32,
    chunk_previous: u32,
    chunk_size: u32,
    chunk_data: u32,
}

/// The chunk at `address` (`DataStackChunk::NONE` for 0 or an unreadable one).
#[inline(always)]
fn chunk_at(walk: &Walk, address: u64) -> DataStackChunk {
    if address == 0 {
        return DataStackChunk::NONE;
    }
    match (
        read_user::<u64>(address, walk.chunk_previous),
        read_user::<u64>(address, walk.chunk_size),
    ) {
        // CPython's chunks are tens of KiB; a size past 1 GiB is not a chunk.
        (Some(previous), Some(size)) if size < 1 << 30 => DataStackChunk {
            frames: address + u64::from(walk.chunk_data),
            end: address + size,
            previous,
        },
        _ => DataStackChunk::NONE,
    }
}

/// Reads user memory holding the frame `[frame, end)` into the window: up to [`WINDOW_BYTES`]
/// of its data-stack chunk ending with it (its callers are below it), or the frame alone
/// (frames of CPython before 3.11, of generators, C-stack shims). Whether it could be read.
#[inline(always)]
fn load_window(w: &Walk, frame: u64, end: u64) -> bool {
    // SAFETY: this CPU's scratch is ours until the program returns.
    let cursor = unsafe { &mut (*w.scratch).cursor };
    if !cursor.chunk.holds(frame, end) && cursor.chunk.previous != 0 {
        // Past the chunk's oldest frame, the callers go on in the older chunk; a frame of
        // no chunk (a generator's, a shim) leaves the walk in the chunk it was in.
        if cursor.older.end == 0 {
            cursor.older = chunk_at(w, cursor.chunk.previous);
        }
        if cursor.older.holds(frame, end) {
            cursor.chunk = cursor.older;
            cursor.older = DataStackChunk::NONE;
        }
    }
    // SAFETY: as above.
    let window = unsafe { (*w.scratch).window.as_mut_ptr() };
    if cursor.chunk.holds(frame, end) {
        let start = end
            .saturating_sub(u64::from(WINDOW_BYTES))
            .max(cursor.chunk.frames);
        // 1 to WINDOW_BYTES (end > start), bounded in the register the helper is given: the
        // verifier does not carry a comparison over to LLVM's copies of a value.
        let len = ((end - start) as u32).wrapping_sub(1) & (WINDOW_BYTES - 1);
        let len = len + 1;
        // SAFETY: a checked read of at most WINDOW_BYTES into the window.
        if unsafe { generated::bpf_probe_read_user(window.cast(), len, start as *const _) } == 0 {
            cursor.window_start = start;
            cursor.window_end = end;
            return true;
        }
    }
    let len = w.read_bytes & (2 * FRAME_READ_MAX - 1);
    // SAFETY: a checked read of at most 2 * FRAME_READ_MAX bytes into the window.
    if unsafe { generated::bpf_probe_read_user(window.cast(), len, frame as *const _) } != 0 {
        return false;
    }
    cursor.window_start = frame;
    cursor.window_end = frame + u64::from(len);
    true
}

/// One step of a walk: reads one frame; 1 (stop) past the outermost frame, at the depth asked
/// for, or at a frame that cannot be read.
#[inline(never)]
extern "C" fn walk_step(_index: u64, walk: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes the Walk of the walk running on this CPU.
    let w = unsafe { &mut *walk.cast::<Walk>() };
    let (frame, scratch) = (w.frame, w.scratch);
    // SAFETY: as above.
    let (walked, window_start, window_end) = unsafe {
        (
            (*scratch).header.walked,
            (*scratch).cursor.window_start,
            (*scratch).cursor.window_end,
        )
    };
    if frame == 0 || walked >= w.depth {
        return 1;
    }
    // Every field the walk needs lies in a frame's first `read_bytes`.
    let end = frame + u64::from(w.read_bytes);
    if (frame < window_start || end > window_end) && !load_window(w, frame, end) {
        return 1;
    }
    // SAFETY: as above.
    let at = frame - unsafe { (*scratch).cursor.window_start };
    let c_shim = w.frame_owner != 0
        && u32::from(frame_field::<u8>(scratch, at, w.frame_owner - 1)) == w.owner_c_stack;
    if !c_shim {
        let code = frame_field::<u64>(scratch, at, w.frame_code);
        let instr = frame_field::<u64>(scratch, at, w.frame_instr);
        w.key = mix(mix(w.key, code), instr);
        // SAFETY: as above; the slot is below KEPT_FRAMES by construction.
        unsafe {
            (*scratch).frames[kept_slot(walked) % KEPT_FRAMES] = PyFrame { code, instr };
            (*scratch).header.walked = walked + 1;
        }
    }
    w.frame = frame_field(scratch, at, w.frame_previous);
    0
}

/// Sends the frames walked into `scratch` unless a stack of that key was sent already.
/// The key when the loader has (or will have) them.
#[inline(always)]
fn send_frames(scratch: *mut StackScratch, tgid: u32, key: u64) -> Option<u64> {
    // SAFETY: presence test only.
    if unsafe { PYTHON_STACKS_SENT.get(&key) }.is_some() {
        return Some(key);
    }
    let _ = PYTHON_STACKS_SENT.insert(&key, &1, 0);
    // SAFETY: this CPU's scratch is ours until the program returns.
    let frames = unsafe {
        (*scratch).header.record = record::STACK;
        (*scratch).header.tgid = tgid;
        (*scratch).header.key = key;
        ((*scratch).header.walked as usize).min(KEPT_FRAMES)
    };
    let size = size_of::<PyStackHeader>() + frames * size_of::<PyFrame>();
    // SAFETY: the header and the kept frames, contiguous at the start of the scratch.
    let bytes = unsafe { core::slice::from_raw_parts(scratch.cast::<u8>(), size) };
    if PYTHON_SAMPLES
        .output::<[u8]>(bytes, wakeup::flags(&PYTHON_SAMPLES, SAMPLES_BYTES))
        .is_err()
    {
        let _ = PYTHON_STACKS_SENT.remove(&key);
        return None;
    }
    Some(key)
}

/// Takes the current thread's Python stack as a sample of `kind` weighing `weight_ns`, timed
/// `time_ns`, from a program of the task's own context. Whether a sample was sent: not for
/// threads of processes not (yet) known to run CPython, nor outside Python code.
#[inline(always)]
pub fn send_stack(pid_tgid: u64, kind: u32, weight_ns: u64, time_ns: u64) -> bool {
    send_stack_from(scratch::TASK, pid_tgid, kind, weight_ns, time_ns)
}

/// [`send_stack`], walking in scratch slot `slot`.
#[inline(always)]
fn send_stack_from(slot: u32, pid_tgid: u64, kind: u32, weight_ns: u64, time_ns: u64) -> bool {
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: copied out of the map.
    let Some(process) = (unsafe { PYTHON_PROCS.get(&tgid) }).copied() else {
        return false;
    };
    let Some(scratch) = PYTHON_SCRATCH.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: this CPU's slot: set and cleared around the walk by whoever holds it.
    unsafe {
        if (*scratch).busy != 0 {
            bump(Counter::PythonSamplesDropped);
            return false;
        }
        (*scratch).busy = 1;
    }
    let config = config();
    let sent = walk(scratch, &config, &process, tgid).map(|key| send_frames(scratch, tgid, key));
    // SAFETY: as above.
    unsafe { (*scratch).busy = 0 };
    let key = match sent {
        None => return false,
        Some(None) => {
            bump(Counter::PythonSamplesDropped);
            return false;
        }
        Some(Some(key)) => key,
    };
    let Some(mut entry) = PYTHON_SAMPLES.reserve::<PySample>(0) else {
        bump(Counter::PythonSamplesDropped);
        return false;
    };
    entry.write(PySample {
        record: record::SAMPLE,
        kind,
        time_ns,
        weight_ns,
        tgid,
        tid: pid_tgid as u32,
        key,
    });
    // After a long wait, wake the loader now: the process may be about to exit (a main thread
    // joining its workers), and its code objects can only be named while it lives.
    let flags = if weight_ns >= PROMPT_AFTER_NS {
        wakeup::BPF_RB_FORCE_WAKEUP
    } else {
        wakeup::flags(&PYTHON_SAMPLES, SAMPLES_BYTES)
    };
    entry.submit(flags);
    true
}

/// On CPU: the thread the timer interrupted, if it is a target running Python.
#[perf_event]
pub fn python_sample(_ctx: PerfEventContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if tgid != 0 && is_target(tgid) {
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        send_stack_from(scratch::INTERRUPT, pid_tgid, kind::ON_CPU, 0, now);
    }
    0
}

/// sched_switch (raw: `preempt, prev, next, prev_state`, checked against BTF), in the context
/// of the task leaving the CPU: a target Python thread that blocks starts an off-CPU period;
/// the task coming in ends its own. A raw tracepoint: the classic one would format a record
/// of both tasks on every switch of the machine.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn python_switch(ctx: RawTracePointContext) -> i32 {
    // Periods are keyed by task pointer: the incoming task's needs no read of its pid.
    let next: u64 = ctx.arg(switch_arg::NEXT);
    if let Some(period) = PYTHON_OFF_CPU.get_ptr_mut(&next) {
        // SAFETY: the entry of a thread that is not running: only sched_switch writes it now.
        unsafe {
            if (*period).start_ns != 0 {
                (*period).total_ns += bpf_ktime_get_ns().saturating_sub((*period).start_ns);
                (*period).start_ns = 0;
            }
        }
    }
    // A preempted task, or one still TASK_RUNNING (0), is runnable: not blocked.
    let preempt: u64 = ctx.arg(switch_arg::PREEMPT);
    let prev_state: u64 = ctx.arg(switch_arg::PREV_STATE);
    if preempt & 0xff != 0 || prev_state as u32 == 0 {
        return 0;
    }
    // The leaving task is the current one. Every target thread, not only those of processes
    // known to run CPython yet (a wait that began before the loader found the interpreter is
    // still sampled when it ends), has the hooks' storage once it made a system call: its
    // lookup is the target test, cheaper than hashing the pid.
    let Some(calls) = HOOKS_THREADS.current() else {
        return 0;
    };
    // SAFETY: the current thread's own storage.
    let calls = unsafe { &mut *calls };
    let prev: u64 = ctx.arg(switch_arg::PREV);
    if calls.python_blocked != 0
        && let Some(period) = PYTHON_OFF_CPU.get_ptr_mut(&prev)
    {
        // SAFETY: the current thread's own entry; helper without arguments.
        unsafe { (*period).start_ns = bpf_ktime_get_ns() };
        return 0;
    }
    let period = OffCpu {
        // SAFETY: helper without arguments.
        start_ns: unsafe { bpf_ktime_get_ns() },
        total_ns: 0,
    };
    if PYTHON_OFF_CPU.insert(&prev, &period, 0).is_ok() {
        calls.python_blocked = 1;
    }
    0
}

/// Entering a system call (run by the hooks): a period left by a block outside system calls
/// (a page fault) is not this call's, and is dropped.
#[inline(always)]
pub fn syscall_entered(calls: &mut ThreadCalls) {
    if calls.python_blocked == 0 {
        return;
    }
    calls.python_blocked = 0;
    // SAFETY: helper without arguments.
    let _ = PYTHON_OFF_CPU.remove(&unsafe { bpf_get_current_task() });
}

/// Returning from a system call that blocked (run by the hooks): its Python stack, weighted
/// by the time off CPU.
#[inline(always)]
pub fn syscall_returned(calls: &mut ThreadCalls, pid_tgid: u64) {
    if calls.python_blocked == 0 {
        return;
    }
    calls.python_blocked = 0;
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    // SAFETY: copied out before removal.
    let Some(period) = (unsafe { PYTHON_OFF_CPU.get(&task) }).copied() else {
        return;
    };
    let _ = PYTHON_OFF_CPU.remove(&task);
    let every = config().off_cpu_every_ns;
    let weight = if period.total_ns >= every {
        period.total_ns
    } else {
        // A shorter wait is taken with probability total / every and weighs `every`: the sum
        // of weights estimates the time off CPU without bias, while a thread making thousands
        // of short waits a second costs at most one stack walk per `every` it waited.
        // SAFETY: helper without arguments.
        let draw = (u64::from(unsafe { bpf_get_prandom_u32() }) * every) >> 32;
        if draw >= period.total_ns {
            return;
        }
        every
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    send_stack(pid_tgid, kind::OFF_CPU, weight, now);
}
