//! SQLite's API, probed in the libsqlite3 of target processes (see `tracers::protocols::sqlite`):
//! prepare gives a statement handle its text, steps add up into one execution per handle,
//! reset and finalize end an execution the program stopped reading, errmsg names a failure,
//! changes counts the rows an INSERT/UPDATE/DELETE changed.
//! Registers are read at the `struct pt_regs` offsets userspace learned from BTF.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user,
        bpf_probe_read_user_str_bytes, generated,
    },
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, LruHashMap, RingBuf},
    programs::{ProbeContext, RetProbeContext},
};
use tracers::{
    counters::Counter,
    protocols::sqlite::{
        ChangesEvent, EVENTS_BYTES, ErrmsgEvent, FinalizeEvent, LIBS_MAX, Library, PrepareEvent,
        Preparing, RUNS_MAX, Run, RunEvent, RunKey, SQLITE_ROW, SqliteConfig, Stepping,
        THREADS_MAX, kind,
    },
    python::kind as python_kind,
};

use crate::{counters::bump, python, target::is_target, uprobe_regs::register, wakeup};

#[map]
static SQLITE_LIBS: HashMap<u32, Library> = HashMap::with_max_entries(LIBS_MAX, 0);

#[map]
static SQLITE_PREPARING: HashMap<u32, Preparing> = HashMap::with_max_entries(THREADS_MAX, 0);

#[map]
static SQLITE_STEPPING: HashMap<u32, Stepping> = HashMap::with_max_entries(THREADS_MAX, 0);

#[map]
static SQLITE_RUNS: LruHashMap<RunKey, Run> = LruHashMap::with_max_entries(RUNS_MAX, 0);

#[map]
static SQLITE_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[unsafe(no_mangle)]
static SQLITE_CONFIG: SqliteConfig = SqliteConfig {
    args: [0; 6],
    ret: 0,
    sp: 0,
    ip: 0,
    vm_start: 0,
    vm_end: 0,
    _pad: 0,
};

#[inline(always)]
fn config() -> SqliteConfig {
    // SAFETY: a read of our own global; volatile so the loader's value is read, not the
    // compile-time zero.
    unsafe { core::ptr::read_volatile(&SQLITE_CONFIG) }
}

#[inline(always)]
fn read_user<T>(address: u64) -> Option<T> {
    // SAFETY: a checked read; a bad address fails instead of faulting.
    unsafe { bpf_probe_read_user(address as *const T) }.ok()
}

/// Where SQLite's code is in the current process, if it is a target. The first call of a
/// process into SQLite (an entry probe, where the instruction pointer is the probed function)
/// learns it from the mapping holding that function: a program that runs a few statements and
/// exits is traced from its first, without waiting for userspace to find the library.
#[inline(always)]
fn library(tgid: u32, regs: *const c_void, at_return: bool) -> Option<Library> {
    if !is_target(tgid) {
        return None;
    }
    // SAFETY: copied out of the map.
    if let Some(library) = unsafe { SQLITE_LIBS.get(&tgid) }.copied() {
        return Some(library);
    }
    if at_return {
        return None;
    }
    let config = config();
    let mut search = VmaSearch {
        start: 0,
        end: 0,
        vm_start: config.vm_start,
        vm_end: config.vm_end,
    };
    // SAFETY: the current task's BTF pointer; the callback is a BPF function of this object
    // and `search` outlives the call.
    let found = unsafe {
        generated::bpf_find_vma(
            generated::bpf_get_current_task_btf(),
            register(regs, config.ip),
            found_vma as *mut c_void,
            (&raw mut search).cast(),
            0,
        )
    };
    if found != 0 || search.end <= search.start {
        return None;
    }
    let library = Library {
        start: search.start,
        end: search.end,
    };
    // A full map only means the next call looks again.
    let _ = SQLITE_LIBS.insert(&tgid, &library, 0);
    Some(library)
}

/// What `bpf_find_vma`'s callback is given (the field offsets) and finds (the bounds).
#[repr(C)]
struct VmaSearch {
    start: u64,
    end: u64,
    vm_start: u32,
    vm_end: u32,
}

#[inline(never)]
extern "C" fn found_vma(_task: *mut c_void, vma: *mut c_void, search: *mut c_void) -> i64 {
    // SAFETY: bpf_find_vma passes the VmaSearch of the program running on this CPU.
    let search = unsafe { &mut *search.cast::<VmaSearch>() };
    let field = |offset: u32| {
        // SAFETY: a checked read of the mapping's bounds, at offsets from BTF.
        unsafe { bpf_probe_read_kernel((vma as *const u8).add(offset as usize) as *const u64) }
            .unwrap_or(0)
    };
    search.start = field(search.vm_start);
    search.end = field(search.vm_end);
    0
}

/// Whether the call returns into SQLite itself: its own use of its API is not the program's.
#[inline(always)]
fn from_sqlite(library: &Library, return_address: u64) -> bool {
    return_address >= library.start && return_address < library.end
}

/// At a function's first instruction the return address is on top of the stack.
#[inline(always)]
fn caller_of_entry(regs: *const c_void, config: &SqliteConfig) -> u64 {
    read_user(register(regs, config.sp)).unwrap_or(0)
}

/// The current task's tgid and tid, when it is a target calling SQLite from outside it.
#[inline(always)]
fn program_call(regs: *const c_void, at_return: bool) -> Option<(u64, SqliteConfig)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let library = library((pid_tgid >> 32) as u32, regs, at_return)?;
    let config = config();
    // In a uretprobe the instruction pointer is already the address returned to.
    let caller = if at_return {
        register(regs, config.ip)
    } else {
        caller_of_entry(regs, &config)
    };
    (!from_sqlite(&library, caller)).then_some((pid_tgid, config))
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn prepare_entry(regs: *const c_void, stmt_arg: usize, tail_arg: usize) -> u32 {
    let Some((pid_tgid, config)) = program_call(regs, false) else {
        return 0;
    };
    let preparing = Preparing {
        sql: register(regs, config.args[1]),
        nbyte: i64::from(register(regs, config.args[2]) as i32),
        stmt_out: register(regs, config.args[stmt_arg]),
        tail_out: register(regs, config.args[tail_arg]),
        start_ns: now(),
    };
    if SQLITE_PREPARING
        .insert(&(pid_tgid as u32), &preparing, 0)
        .is_err()
    {
        bump(Counter::SqliteMapFull);
    }
    0
}

/// `sqlite3_prepare_v2(db, zSql, nByte, ppStmt, pzTail)`
#[uprobe]
pub fn sqlite_prepare_v2(ctx: ProbeContext) -> u32 {
    prepare_entry(ctx.regs as *const c_void, 3, 4)
}

/// `sqlite3_prepare_v3(db, zSql, nByte, prepFlags, ppStmt, pzTail)`
#[uprobe]
pub fn sqlite_prepare_v3(ctx: ProbeContext) -> u32 {
    prepare_entry(ctx.regs as *const c_void, 4, 5)
}

#[uretprobe]
pub fn sqlite_prepare_return(ctx: RetProbeContext) -> u32 {
    let regs = ctx.regs as *const c_void;
    let Some((pid_tgid, config)) = program_call(regs, true) else {
        return 0;
    };
    let tid = pid_tgid as u32;
    // SAFETY: copied out of the map.
    let Some(preparing) = (unsafe { SQLITE_PREPARING.get(&tid) }).copied() else {
        return 0;
    };
    let _ = SQLITE_PREPARING.remove(&tid);
    let end_ns = now();
    let rc = register(regs, config.ret) as i32;
    let stmt = if rc == 0 {
        read_user::<u64>(preparing.stmt_out).unwrap_or(0)
    } else {
        0
    };
    let tail = if preparing.tail_out != 0 {
        read_user::<u64>(preparing.tail_out).unwrap_or(0)
    } else {
        0
    };
    let sql_len = if tail >= preparing.sql && tail - preparing.sql < 1 << 31 {
        tail - preparing.sql
    } else if preparing.nbyte >= 0 {
        preparing.nbyte as u64
    } else {
        0
    };
    // Only a failed prepare is a record of its own, whose Python stack is wanted.
    let python_stack = rc != 0
        && python::send_stack(
            pid_tgid,
            python_kind::SYSCALL,
            end_ns - preparing.start_ns,
            end_ns,
        );
    let Some(mut entry) = SQLITE_EVENTS.reserve::<PrepareEvent>(0) else {
        bump(Counter::SqliteEventsDropped);
        return 0;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: the reserved entry is ours until submitted; every field is written.
    unsafe {
        (*event).kind = kind::PREPARE;
        (*event).tgid = (pid_tgid >> 32) as u32;
        (*event).tid = tid;
        (*event).rc = rc;
        (*event).stmt = stmt;
        (*event).start_ns = preparing.start_ns;
        (*event).end_ns = end_ns;
        (*event).sql_len = sql_len;
        (*event).python_stack = u32::from(python_stack);
        let copied = bpf_probe_read_user_str_bytes(preparing.sql as *const u8, &mut (*event).sql)
            .map_or(0, |bytes| bytes.len());
        (*event).captured = copied as u32;
    }
    entry.submit(wakeup::flags(&SQLITE_EVENTS, EVENTS_BYTES));
    0
}

/// `sqlite3_step(pStmt)`
#[uprobe]
pub fn sqlite_step(ctx: ProbeContext) -> u32 {
    let regs = ctx.regs as *const c_void;
    let Some((pid_tgid, config)) = program_call(regs, false) else {
        return 0;
    };
    let stepping = Stepping {
        stmt: register(regs, config.args[0]),
        start_ns: now(),
    };
    if SQLITE_STEPPING
        .insert(&(pid_tgid as u32), &stepping, 0)
        .is_err()
    {
        bump(Counter::SqliteMapFull);
    }
    0
}

#[inline(always)]
fn send_run(pid_tgid: u64, stmt: u64, run: &Run, rc: i32, end_ns: u64, finished: bool) {
    let Some(mut entry) = SQLITE_EVENTS.reserve::<RunEvent>(0) else {
        bump(Counter::SqliteEventsDropped);
        return;
    };
    entry.write(RunEvent {
        kind: kind::RUN,
        tgid: (pid_tgid >> 32) as u32,
        tid: run.tid,
        rc,
        stmt,
        start_ns: run.start_ns,
        end_ns,
        busy_ns: run.busy_ns,
        rows: run.rows,
        finished: u32::from(finished),
        python_stack: run.python_stack,
    });
    entry.submit(wakeup::flags(&SQLITE_EVENTS, EVENTS_BYTES));
}

#[uretprobe]
pub fn sqlite_step_return(ctx: RetProbeContext) -> u32 {
    let regs = ctx.regs as *const c_void;
    let Some((pid_tgid, config)) = program_call(regs, true) else {
        return 0;
    };
    let tid = pid_tgid as u32;
    // SAFETY: copied out of the map.
    let Some(stepping) = (unsafe { SQLITE_STEPPING.get(&tid) }).copied() else {
        return 0;
    };
    let _ = SQLITE_STEPPING.remove(&tid);
    let end_ns = now();
    let busy_ns = end_ns - stepping.start_ns;
    let rc = register(regs, config.ret) as i32;
    let key = RunKey {
        tgid: (pid_tgid >> 32) as u32,
        _pad: 0,
        stmt: stepping.stmt,
    };
    if let Some(run) = SQLITE_RUNS.get_ptr_mut(&key) {
        // SAFETY: the entry of this thread's statement; a statement is stepped by one thread
        // at a time (SQLite serializes a connection).
        unsafe {
            (*run).busy_ns += busy_ns;
            if rc == SQLITE_ROW {
                (*run).rows += 1;
                return 0;
            }
            send_run(pid_tgid, stepping.stmt, &*run, rc, end_ns, true);
        }
        let _ = SQLITE_RUNS.remove(&key);
        return 0;
    }
    // The first step of an execution: the Python code that ran it is on the stack now.
    let python_stack =
        python::send_stack(pid_tgid, python_kind::SYSCALL, busy_ns, stepping.start_ns);
    let run = Run {
        start_ns: stepping.start_ns,
        busy_ns,
        rows: u64::from(rc == SQLITE_ROW),
        tid,
        python_stack: u32::from(python_stack),
    };
    if rc != SQLITE_ROW {
        send_run(pid_tgid, stepping.stmt, &run, rc, end_ns, true);
    } else if SQLITE_RUNS.insert(&key, &run, 0).is_err() {
        bump(Counter::SqliteMapFull);
    }
    0
}

/// A reset or finalize: an execution still in progress ends here, with the rows taken.
#[inline(always)]
fn end_execution(regs: *const c_void, finalize: bool) -> u32 {
    let Some((pid_tgid, config)) = program_call(regs, false) else {
        return 0;
    };
    let stmt = register(regs, config.args[0]);
    let key = RunKey {
        tgid: (pid_tgid >> 32) as u32,
        _pad: 0,
        stmt,
    };
    // SAFETY: copied out of the map.
    if let Some(run) = (unsafe { SQLITE_RUNS.get(&key) }).copied() {
        let _ = SQLITE_RUNS.remove(&key);
        send_run(pid_tgid, stmt, &run, SQLITE_ROW, now(), false);
    }
    if finalize {
        let Some(mut entry) = SQLITE_EVENTS.reserve::<FinalizeEvent>(0) else {
            bump(Counter::SqliteEventsDropped);
            return 0;
        };
        entry.write(FinalizeEvent {
            kind: kind::FINALIZE,
            tgid: key.tgid,
            stmt,
        });
        entry.submit(wakeup::flags(&SQLITE_EVENTS, EVENTS_BYTES));
    }
    0
}

/// `sqlite3_reset(pStmt)`
#[uprobe]
pub fn sqlite_reset(ctx: ProbeContext) -> u32 {
    end_execution(ctx.regs as *const c_void, false)
}

/// `sqlite3_finalize(pStmt)`
#[uprobe]
pub fn sqlite_finalize(ctx: ProbeContext) -> u32 {
    end_execution(ctx.regs as *const c_void, true)
}

/// `sqlite3_errmsg(db)`: the message of the last failure on that connection.
#[uretprobe]
pub fn sqlite_errmsg_return(ctx: RetProbeContext) -> u32 {
    let regs = ctx.regs as *const c_void;
    let Some((pid_tgid, config)) = program_call(regs, true) else {
        return 0;
    };
    let text = register(regs, config.ret);
    let Some(mut entry) = SQLITE_EVENTS.reserve::<ErrmsgEvent>(0) else {
        bump(Counter::SqliteEventsDropped);
        return 0;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: the reserved entry is ours until submitted; every field is written.
    unsafe {
        (*event).kind = kind::ERRMSG;
        (*event).tgid = (pid_tgid >> 32) as u32;
        (*event).tid = pid_tgid as u32;
        let copied = bpf_probe_read_user_str_bytes(text as *const u8, &mut (*event).text)
            .map_or(0, |bytes| bytes.len());
        (*event).captured = copied as u32;
    }
    entry.submit(wakeup::flags(&SQLITE_EVENTS, EVENTS_BYTES));
    0
}

/// `sqlite3_changes(db)` / `sqlite3_changes64(db)`: the rows the last statement changed.
#[uretprobe]
pub fn sqlite_changes_return(ctx: RetProbeContext) -> u32 {
    let regs = ctx.regs as *const c_void;
    let Some((pid_tgid, config)) = program_call(regs, true) else {
        return 0;
    };
    let Some(mut entry) = SQLITE_EVENTS.reserve::<ChangesEvent>(0) else {
        bump(Counter::SqliteEventsDropped);
        return 0;
    };
    entry.write(ChangesEvent {
        kind: kind::CHANGES,
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        _pad: 0,
        // `sqlite3_changes` returns an int: only the low half of the register is its.
        changes: i64::from(register(regs, config.ret) as i32),
    });
    entry.submit(wakeup::flags(&SQLITE_EVENTS, EVENTS_BYTES));
    0
}
