//! SQLite, part of the `protocols` tracer: it has no socket to read, so uprobes on the
//! `libsqlite3` that target processes load see its API instead. `sqlite3_prepare_v2`/`_v3`
//! give each statement handle its SQL text; `sqlite3_step` calls are summed per execution of a
//! handle (rows returned, time inside SQLite) until one returns something else than a row, or
//! `sqlite3_reset`/`sqlite3_finalize` ends it early; `sqlite3_errmsg`'s answer gives a
//! failure its message and `sqlite3_changes`'s an INSERT/UPDATE/DELETE its rows (the program
//! asks for them right after the step that failed or finished). Calls SQLite makes to itself (schema loading, `sqlite3_exec`) are
//! told apart by their return address and not recorded.

/// Hash map `u32 tgid` -> [`Library`]: target processes with libsqlite3 mapped, where.
pub const LIBS_MAP: &str = "SQLITE_LIBS";
/// Hash map `u32 tid` -> [`Preparing`].
pub const PREPARING_MAP: &str = "SQLITE_PREPARING";
/// Hash map `u32 tid` -> [`Stepping`].
pub const STEPPING_MAP: &str = "SQLITE_STEPPING";
/// LRU hash map [`RunKey`] -> [`Run`]: executions in progress.
pub const RUNS_MAP: &str = "SQLITE_RUNS";
/// Ring buffer of [`PrepareEvent`], [`RunEvent`], [`FinalizeEvent`], [`ErrmsgEvent`],
/// [`ChangesEvent`] (by `kind`).
pub const EVENTS_MAP: &str = "SQLITE_EVENTS";
/// Global (read-only after load) holding a [`SqliteConfig`].
pub const CONFIG_GLOBAL: &str = "SQLITE_CONFIG";

pub const LIBS_MAX: u32 = 4096;
pub const THREADS_MAX: u32 = 16384;
pub const RUNS_MAX: u32 = 16384;
pub const EVENTS_BYTES: u32 = 4 << 20;
/// Bytes of a statement's text copied at prepare (longer statements are cut).
pub const SQL_BYTES: usize = 2048;
/// Bytes of an error message copied.
pub const ERRMSG_BYTES: usize = 256;

/// The uprobe programs, by the function they go on; `return` ones are uretprobes.
pub mod program {
    pub const PREPARE_V2: &str = "sqlite_prepare_v2";
    pub const PREPARE_V3: &str = "sqlite_prepare_v3";
    pub const PREPARE_RETURN: &str = "sqlite_prepare_return";
    pub const STEP: &str = "sqlite_step";
    pub const STEP_RETURN: &str = "sqlite_step_return";
    pub const RESET: &str = "sqlite_reset";
    pub const FINALIZE: &str = "sqlite_finalize";
    pub const ERRMSG_RETURN: &str = "sqlite_errmsg_return";
    /// On `sqlite3_changes` and `sqlite3_changes64`.
    pub const CHANGES_RETURN: &str = "sqlite_changes_return";
}

/// Event kinds in [`EVENTS_MAP`]; every event starts with a `u32` kind.
pub mod kind {
    pub const PREPARE: u32 = 1;
    pub const RUN: u32 = 2;
    pub const FINALIZE: u32 = 3;
    pub const ERRMSG: u32 = 4;
    pub const CHANGES: u32 = 5;
}

/// `sqlite3_step`'s "another row is ready".
pub const SQLITE_ROW: i32 = 100;

/// Where a process mapped libsqlite3: calls returning into this range are SQLite's own.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Library {
    pub start: u64,
    pub end: u64,
}

/// A `sqlite3_prepare_v2`/`_v3` call in progress (user pointers).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preparing {
    pub sql: u64,
    /// `nByte`: the SQL's length in bytes, negative when NUL-terminated.
    pub nbyte: i64,
    /// `ppStmt` and `pzTail`.
    pub stmt_out: u64,
    pub tail_out: u64,
    pub start_ns: u64,
}

/// A `sqlite3_step` call in progress.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stepping {
    pub stmt: u64,
    pub start_ns: u64,
}

/// A statement handle of a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RunKey {
    pub tgid: u32,
    pub _pad: u32,
    pub stmt: u64,
}

/// An execution of a statement in progress: from its first step.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Run {
    pub start_ns: u64,
    /// Time inside `sqlite3_step`.
    pub busy_ns: u64,
    pub rows: u64,
    pub tid: u32,
    /// Non-zero: a Python stack sample was sent with `tid` and `start_ns` as its time.
    pub python_stack: u32,
}

/// A statement prepared (or not: `rc` != 0), with its text.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrepareEvent {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub rc: i32,
    pub stmt: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Bytes of the SQL the statement is made of (up to `pzTail`); 0 when unknown.
    pub sql_len: u64,
    /// Valid bytes of `sql`.
    pub captured: u32,
    pub python_stack: u32,
    pub sql: [u8; SQL_BYTES],
}

/// An execution ended: by a step that returned `rc` (`finished`), or by a reset or finalize
/// before that (its rows are those the program took).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunEvent {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub rc: i32,
    pub stmt: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub busy_ns: u64,
    pub rows: u64,
    pub finished: u32,
    pub python_stack: u32,
}

/// A statement handle was finalized: its text is no longer needed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FinalizeEvent {
    pub kind: u32,
    pub tgid: u32,
    pub stmt: u64,
}

/// What `sqlite3_errmsg` answered a thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrmsgEvent {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    /// Valid bytes of `text`.
    pub captured: u32,
    pub text: [u8; ERRMSG_BYTES],
}

/// What `sqlite3_changes` answered a thread: rows the last INSERT/UPDATE/DELETE changed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangesEvent {
    pub kind: u32,
    pub tgid: u32,
    pub tid: u32,
    pub _pad: u32,
    pub changes: i64,
}

/// Offsets in `struct pt_regs` (from BTF) of the registers the probes read: the first six
/// integer arguments, the return value, the stack and instruction pointers; and in `struct
/// vm_area_struct` of its bounds, so a process's first call into SQLite finds the mapping of
/// SQLite's code itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqliteConfig {
    pub args: [u32; 6],
    pub ret: u32,
    pub sp: u32,
    pub ip: u32,
    pub vm_start: u32,
    pub vm_end: u32,
    pub _pad: u32,
}

crate::user_pod!(Library, RunKey, Run, Preparing, Stepping, SqliteConfig);
