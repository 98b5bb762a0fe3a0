//! The `files` tracer: file-system I/O of target processes on regular files. Reads, writes,
//! syncs, opens and closes are aggregated in the kernel per (process, file, fd, operation);
//! opens stream the path they opened, and slow operations, renames and unlinks are events.

/// Array indexed by syscall number: the [`FileSyscall`] each traced syscall is.
pub const SYSCALLS_MAP: &str = "FILE_SYSCALLS";
/// Per-CPU hash map [`FileKey`] -> [`FileStats`], cumulative since attach.
pub const STATS_MAP: &str = "FILE_STATS";
/// Array with one `u64`: the interval number userspace is collecting (resets `max_ns`).
pub const INTERVAL_MAP: &str = "FILE_INTERVAL";
/// Ring buffer of [`FileOpenEvent`], [`FileSlowEvent`] and [`FilePathEvent`] (by `kind`).
pub const EVENTS_MAP: &str = "FILE_EVENTS";
/// Global (read-only after load) holding a [`FilesConfig`].
pub const CONFIG_GLOBAL: &str = "FILES_CONFIG";

pub const SYSCALLS_MAX: u32 = 1024;
pub const STATS_MAX: u32 = 16384;
pub const EVENTS_BYTES: u32 = 2 << 20;
/// Bytes of a path copied from the traced process (longer paths are cut, and say so).
pub const PATH_BYTES: usize = 256;

/// What a traced syscall does; `NONE` for syscalls the tracer ignores.
pub mod op {
    pub const NONE: u32 = 0;
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const SYNC: u32 = 3;
    pub const OPEN: u32 = 4;
    pub const CLOSE: u32 = 5;
    pub const RENAME: u32 = 6;
    pub const UNLINK: u32 = 7;

    pub const fn name(op: u32) -> &'static str {
        match op {
            READ => "read",
            WRITE => "write",
            SYNC => "sync",
            OPEN => "open",
            CLOSE => "close",
            RENAME => "rename",
            UNLINK => "unlink",
            _ => "none",
        }
    }

    /// Operations on an open fd (the others name paths).
    pub const fn on_fd(op: u32) -> bool {
        matches!(op, READ | WRITE | SYNC | CLOSE)
    }
}

/// Event kinds in [`EVENTS_MAP`]; every event starts with a `u32` kind.
pub mod kind {
    pub const OPEN: u32 = 1;
    pub const SLOW: u32 = 2;
    pub const PATH: u32 = 3;
}

/// How the hooks read one traced syscall: its operation, and which of its arguments (1 to 6,
/// from its tracefs format file; 0 when it has none) is the fd or a path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileSyscall {
    pub op: u32,
    pub fd_arg: u32,
    pub path_arg: u32,
    /// Second path (renames' new name).
    pub path2_arg: u32,
}

/// A file as the kernel names it: its file system's device and its inode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Kernel `dev_t` of the super block (major << 20 | minor).
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

/// Aggregation key: one row per interval per key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    pub tgid: u32,
    pub fd: u32,
    pub op: u32,
    pub _pad: u32,
    pub file: FileId,
}

/// Cumulative statistics of one key on one CPU (userspace sums over CPUs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStats {
    pub calls: u64,
    pub errors: u64,
    /// Bytes read or written (successful calls' return values).
    pub bytes: u64,
    pub total_ns: u64,
    /// Longest call on this CPU that ended in interval `max_interval`.
    pub max_ns: u64,
    pub max_interval: u64,
}

/// An fd operation in progress on a regular file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdInflight {
    pub start_ns: u64,
    pub op: u32,
    pub fd: u32,
    pub file: FileId,
}

/// A path operation (open, rename, unlink) in progress.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathInflight {
    pub start_ns: u64,
    pub op: u32,
    pub _pad: u32,
    pub path: [u8; PATH_BYTES],
    pub path2: [u8; PATH_BYTES],
}

/// A regular file a target opened (and the fd it got).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOpenEvent {
    pub kind: u32,
    pub tgid: u32,
    pub fd: u32,
    pub _pad: u32,
    pub file: FileId,
    pub path: [u8; PATH_BYTES],
}

/// An fd operation slower than [`FilesConfig::slow_ns`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSlowEvent {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub fd: u32,
    pub op: u32,
    /// Non-zero: a Python stack sample was sent with this `tid` and `end_ns` as its time.
    pub python_stack: u32,
    /// Kernel monotonic time at return.
    pub end_ns: u64,
    pub duration_ns: u64,
    pub ret: i64,
    pub file: FileId,
    pub comm: [u8; 16],
}

/// A rename or unlink by a target (every one, slow or not).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilePathEvent {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub op: u32,
    pub end_ns: u64,
    pub duration_ns: u64,
    pub ret: i64,
    pub comm: [u8; 16],
    pub path: [u8; PATH_BYTES],
    pub path2: [u8; PATH_BYTES],
}

/// Byte offsets of the kernel structs walked from the current task to an fd's inode (from BTF).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileWalk {
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_inode: u32,
    pub inode_mode: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    pub _pad: u32,
}

/// Load-time configuration of the files tracer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilesConfig {
    /// Operations at least this long (ns) are also sent as events.
    pub slow_ns: u64,
    pub walk: FileWalk,
}

crate::user_pod!(
    FileSyscall,
    FileId,
    FileKey,
    FileStats,
    FdInflight,
    FileOpenEvent,
    FileSlowEvent,
    FilePathEvent,
    FilesConfig
);
