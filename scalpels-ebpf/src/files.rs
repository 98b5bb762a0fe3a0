//! The `files` tracer: the hooks (`crate::hooks`) run its entry and exit work for the file
//! syscalls of target threads, found by number in `FILE_SYSCALLS`. Fd operations count only
//! when the fd is a regular file, found by walking task -> files -> fdtable -> file -> inode
//! with offsets from BTF.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_ktime_get_ns, bpf_probe_read_kernel_buf,
        bpf_probe_read_user_str_bytes,
    },
    macros::{btf_map, map},
    maps::{Array, PerCpuHashMap, RingBuf},
};
use tracers::{
    counters::Counter,
    files::{
        EVENTS_BYTES, FdInflight, FileId, FileKey, FileOpenEvent, FilePathEvent, FileSlowEvent,
        FileStats, FileSyscall, FileWalk, FilesConfig, PathInflight, STATS_MAX, SYSCALLS_MAX, kind,
        op,
    },
    python::kind as python_kind,
};

use crate::{
    counters::bump,
    fd::{self, read},
    hooks::Regs,
    python,
    task_storage::TaskStorage,
    wakeup,
};

#[map]
static FILE_SYSCALLS: Array<FileSyscall> = Array::with_max_entries(SYSCALLS_MAX, 0);

/// The path operation each target thread is in (`op` NONE between calls).
#[btf_map]
static FILE_PATH_INFLIGHT: TaskStorage<PathInflight> = TaskStorage::new();

#[map]
static FILE_STATS: PerCpuHashMap<FileKey, FileStats> =
    PerCpuHashMap::with_max_entries(STATS_MAX, 0);

#[map]
static FILE_INTERVAL: Array<u64> = Array::with_max_entries(1, 0);

#[map]
static FILE_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

const NO_WALK: FileWalk = FileWalk {
    task_files: 0,
    files_fdt: 0,
    fdtable_max_fds: 0,
    fdtable_fd: 0,
    file_inode: 0,
    inode_mode: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    _pad: 0,
};

#[unsafe(no_mangle)]
static FILES_CONFIG: FilesConfig = FilesConfig {
    slow_ns: u64::MAX,
    walk: NO_WALK,
};

const ZERO_STATS: FileStats = FileStats {
    calls: 0,
    errors: 0,
    bytes: 0,
    total_ns: 0,
    max_ns: 0,
    max_interval: 0,
};

const BPF_NOEXIST: u64 = 1;
const MAX_ERRNO: i64 = 4095;
const S_IFMT: u16 = 0o170000;
const S_IFREG: u16 = 0o100000;

#[inline(always)]
fn config() -> FilesConfig {
    // SAFETY: read of our own global, volatile so the loader's value is used.
    unsafe { core::ptr::read_volatile(&FILES_CONFIG) }
}

/// The file behind `fd` of the current task, if it is a regular file.
#[inline(always)]
fn regular_file(fd: u32, walk: &FileWalk) -> Option<FileId> {
    let file = fd::file(
        fd,
        walk.task_files,
        walk.files_fdt,
        walk.fdtable_max_fds,
        walk.fdtable_fd,
    )?;
    let inode: u64 = read(file, walk.file_inode)?;
    let mode: u16 = read(inode, walk.inode_mode)?;
    if mode & S_IFMT != S_IFREG {
        return None;
    }
    let sb: u64 = read(inode, walk.inode_sb)?;
    Some(FileId {
        dev: read(sb, walk.sb_dev)?,
        _pad: 0,
        ino: read(inode, walk.inode_ino)?,
    })
}

/// The traced file syscall numbered `nr`.
#[inline(always)]
fn syscall(nr: u32) -> Option<FileSyscall> {
    let syscall = FILE_SYSCALLS.get(nr).copied()?;
    (syscall.op != op::NONE).then_some(syscall)
}

/// Entry of a target thread's system call (run by the hooks): a traced file operation is
/// remembered in `fd_call` (fd operations) or the thread's path storage.
#[inline(always)]
pub fn entered(nr: u32, regs: Regs, fd_call: &mut FdInflight) {
    // A call that never returned (the thread exec'd or was killed in it) is not this one.
    fd_call.op = op::NONE;
    let Some(syscall) = syscall(nr) else {
        return;
    };
    // SAFETY: helper without arguments.
    let start_ns = unsafe { bpf_ktime_get_ns() };
    if op::on_fd(syscall.op) {
        let Some(fd) = regs.arg(syscall.fd_arg) else {
            return;
        };
        if let Some(file) = regular_file(fd as u32, &config().walk) {
            *fd_call = FdInflight {
                start_ns,
                op: syscall.op,
                fd: fd as u32,
                file,
            };
        }
        return;
    }
    let Some(inflight) = FILE_PATH_INFLIGHT.current_or_zeroed() else {
        bump(Counter::FilesInflightMapFull);
        return;
    };
    // SAFETY: the storage of this thread; the pointers are the syscall's arguments in user
    // memory, read with checked helpers. The paths of its previous call are cleared first.
    unsafe {
        (*inflight).start_ns = start_ns;
        (*inflight).op = syscall.op;
        (*inflight).path[0] = 0;
        (*inflight).path2[0] = 0;
        if let Some(path) = regs.arg(syscall.path_arg) {
            let _ = bpf_probe_read_user_str_bytes(path as *const u8, &mut (*inflight).path);
        }
        if syscall.path2_arg != 0
            && let Some(path) = regs.arg(syscall.path2_arg)
        {
            let _ = bpf_probe_read_user_str_bytes(path as *const u8, &mut (*inflight).path2);
        }
    }
}

/// Exit of a target thread's system call numbered `nr` (run by the hooks): account a traced
/// file operation, and send what userspace must see.
#[inline(always)]
pub fn exited(nr: u32, ret: i64, pid_tgid: u64, fd_call: &mut FdInflight) {
    let Some(syscall) = syscall(nr) else {
        return;
    };
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if op::on_fd(syscall.op) {
        let inflight = *fd_call;
        if inflight.op == op::NONE {
            return;
        }
        // Accounted now.
        fd_call.op = op::NONE;
        // SAFETY: helper without arguments.
        let end_ns = unsafe { bpf_ktime_get_ns() };
        let duration_ns = end_ns.saturating_sub(inflight.start_ns);
        let key = FileKey {
            tgid,
            fd: inflight.fd,
            op: inflight.op,
            _pad: 0,
            file: inflight.file,
        };
        account(&key, duration_ns, ret);
        if duration_ns >= config().slow_ns {
            send_slow(&key, tid, end_ns, duration_ns, ret);
        }
        return;
    }
    let Some(inflight) = FILE_PATH_INFLIGHT.current() else {
        return;
    };
    // SAFETY: the storage of the thread running this program.
    let start_ns = unsafe { (*inflight).start_ns };
    // SAFETY: as above.
    if unsafe { (*inflight).op } == op::NONE {
        return;
    }
    // SAFETY: helper without arguments.
    let end_ns = unsafe { bpf_ktime_get_ns() };
    let duration_ns = end_ns.saturating_sub(start_ns);
    if syscall.op == op::OPEN {
        if ret >= 0
            && let Some(file) = regular_file(ret as u32, &config().walk)
        {
            let key = FileKey {
                tgid,
                fd: ret as u32,
                op: op::OPEN,
                _pad: 0,
                file,
            };
            account(&key, duration_ns, ret);
            send_open(&key, inflight);
        }
    } else {
        send_path(syscall.op, tgid, tid, end_ns, duration_ns, ret, inflight);
    }
    // SAFETY: as above.
    unsafe { (*inflight).op = op::NONE };
}

/// Adds one call to this CPU's statistics of `key`.
#[inline(always)]
fn account(key: &FileKey, duration_ns: u64, ret: i64) {
    let stats = match FILE_STATS.get_ptr_mut(key) {
        Some(stats) => stats,
        None => {
            if FILE_STATS.insert(key, &ZERO_STATS, BPF_NOEXIST).is_err()
                && FILE_STATS.get_ptr_mut(key).is_none()
            {
                bump(Counter::FilesStatsMapFull);
                return;
            }
            let Some(stats) = FILE_STATS.get_ptr_mut(key) else {
                return;
            };
            stats
        }
    };
    let interval = FILE_INTERVAL.get(0).copied().unwrap_or(0);
    // SAFETY: this CPU's copy; programs do not preempt each other on one CPU.
    let stats = unsafe { &mut *stats };
    stats.calls += 1;
    stats.total_ns += duration_ns;
    if (-MAX_ERRNO..0).contains(&ret) {
        stats.errors += 1;
    } else if matches!(key.op, op::READ | op::WRITE) && ret > 0 {
        stats.bytes += ret as u64;
    }
    if stats.max_interval != interval {
        stats.max_interval = interval;
        stats.max_ns = duration_ns;
    } else if duration_ns > stats.max_ns {
        stats.max_ns = duration_ns;
    }
}

#[inline(always)]
fn send_slow(key: &FileKey, tid: u32, end_ns: u64, duration_ns: u64, ret: i64) {
    let pid_tgid = (u64::from(key.tgid) << 32) | u64::from(tid);
    let python_stack = python::send_stack(pid_tgid, python_kind::SYSCALL, duration_ns, end_ns);
    let Some(mut entry) = FILE_EVENTS.reserve::<FileSlowEvent>(0) else {
        bump(Counter::FilesEventsDropped);
        return;
    };
    entry.write(FileSlowEvent {
        kind: kind::SLOW,
        tgid: key.tgid,
        tid,
        fd: key.fd,
        op: key.op,
        python_stack: u32::from(python_stack),
        end_ns,
        duration_ns,
        ret,
        file: key.file,
        comm: bpf_get_current_comm().unwrap_or_default(),
    });
    entry.submit(wakeup::flags(&FILE_EVENTS, EVENTS_BYTES));
}

/// Sends an open's path; written in place, the event being too large for the stack.
#[inline(always)]
fn send_open(key: &FileKey, inflight: *const PathInflight) {
    let Some(mut entry) = FILE_EVENTS.reserve::<FileOpenEvent>(0) else {
        bump(Counter::FilesEventsDropped);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: the reserved entry is ours until submitted; the source is this thread's entry.
    unsafe {
        (*event).kind = kind::OPEN;
        (*event).tgid = key.tgid;
        (*event).fd = key.fd;
        (*event)._pad = 0;
        (*event).file = key.file;
        if bpf_probe_read_kernel_buf((*inflight).path.as_ptr(), &mut (*event).path).is_err() {
            (*event).path[0] = 0;
        }
    }
    entry.submit(wakeup::flags(&FILE_EVENTS, EVENTS_BYTES));
}

/// Sends a rename or unlink with its paths, written in place.
#[inline(always)]
fn send_path(
    op: u32,
    tgid: u32,
    tid: u32,
    end_ns: u64,
    duration_ns: u64,
    ret: i64,
    inflight: *const PathInflight,
) {
    let Some(mut entry) = FILE_EVENTS.reserve::<FilePathEvent>(0) else {
        bump(Counter::FilesEventsDropped);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: as in send_open.
    unsafe {
        (*event).kind = kind::PATH;
        (*event).tgid = tgid;
        (*event).tid = tid;
        (*event).op = op;
        (*event).end_ns = end_ns;
        (*event).duration_ns = duration_ns;
        (*event).ret = ret;
        (*event).comm = bpf_get_current_comm().unwrap_or_default();
        if bpf_probe_read_kernel_buf((*inflight).path.as_ptr(), &mut (*event).path).is_err() {
            (*event).path[0] = 0;
        }
        if bpf_probe_read_kernel_buf((*inflight).path2.as_ptr(), &mut (*event).path2).is_err() {
            (*event).path2[0] = 0;
        }
    }
    entry.submit(wakeup::flags(&FILE_EVENTS, EVENTS_BYTES));
}
