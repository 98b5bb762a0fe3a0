//! Loss counters kept by the kernel side in one per-CPU array, so that every event the kernel
//! could not deliver or aggregate is counted and reported rather than silently lost.

/// Name of the per-CPU array of `u64` counters, indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";

/// One loss counter. The discriminant is the index in [`COUNTERS_MAP`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A forked child of a target could not be added: the target map was full.
    TargetsMapFull = 0,
    /// A syscall could not be timed: the kernel could not allocate the thread's in-flight
    /// storage.
    SyscallsInflightMapFull = 1,
    /// A (thread, syscall) pair could not be aggregated: the statistics map was full.
    SyscallsStatsMapFull = 2,
    /// A slow-syscall event was dropped: the ring buffer was full.
    SyscallEventsDropped = 3,
    /// A block request could not be tracked: the in-flight map was full.
    BlockInflightMapFull = 4,
    /// A (device, operation) pair could not be aggregated: the statistics map was full.
    BlockStatsMapFull = 5,
    /// A block request event was dropped: the ring buffer was full.
    BlockEventsDropped = 6,
    /// A file operation could not be timed: the kernel could not allocate the thread's
    /// in-flight storage.
    FilesInflightMapFull = 7,
    /// A (process, file, fd, operation) could not be aggregated: the statistics map was full.
    FilesStatsMapFull = 8,
    /// An open, slow-operation, rename or unlink event was dropped: the ring buffer was full.
    FilesEventsDropped = 9,
    /// A Python stack sample was dropped: the ring buffer was full.
    PythonSamplesDropped = 10,
    /// A Python function's calls could not be aggregated (`--python-calls`): the statistics
    /// map or the call-stack map was full.
    PythonCallsMapFull = 11,
    /// A socket syscall could not be followed: the kernel could not allocate the thread's
    /// in-flight storage.
    ProtocolsInflightMapFull = 12,
    /// A connection, payload, close or exit event was dropped: the ring buffer was full.
    ProtocolsEventsDropped = 13,
    /// A process's exit will not be streamed: the map of processes with connections was full.
    ProtocolsProcsMapFull = 14,
    /// A SQLite call could not be followed: a thread or execution map was full.
    SqliteMapFull = 15,
    /// A SQLite prepare, execution or error event was dropped: the ring buffer was full.
    SqliteEventsDropped = 16,
    /// A system call returned that a target thread was already in when its process became a
    /// target: cut by the start of the run, it has no row.
    SyscallsCutAtStart = 17,
    /// An SSL read or write moved plaintext that could not be tied to a followed socket (the
    /// SSL object does its I/O through memory BIOs, or its socket was never seen): no parser
    /// had it.
    TlsNoSocket = 18,
}

impl Counter {
    pub const ALL: [Counter; 19] = [
        Counter::TargetsMapFull,
        Counter::SyscallsInflightMapFull,
        Counter::SyscallsStatsMapFull,
        Counter::SyscallEventsDropped,
        Counter::BlockInflightMapFull,
        Counter::BlockStatsMapFull,
        Counter::BlockEventsDropped,
        Counter::FilesInflightMapFull,
        Counter::FilesStatsMapFull,
        Counter::FilesEventsDropped,
        Counter::PythonSamplesDropped,
        Counter::PythonCallsMapFull,
        Counter::ProtocolsInflightMapFull,
        Counter::ProtocolsEventsDropped,
        Counter::ProtocolsProcsMapFull,
        Counter::SqliteMapFull,
        Counter::SqliteEventsDropped,
        Counter::SyscallsCutAtStart,
        Counter::TlsNoSocket,
    ];
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// The tracer a counter belongs to ("target" for the shared target set).
    pub const fn tracer(self) -> &'static str {
        match self {
            Counter::TargetsMapFull => "target",
            Counter::SyscallsInflightMapFull
            | Counter::SyscallsStatsMapFull
            | Counter::SyscallEventsDropped
            | Counter::SyscallsCutAtStart => "syscalls",
            Counter::BlockInflightMapFull
            | Counter::BlockStatsMapFull
            | Counter::BlockEventsDropped => "block",
            Counter::FilesInflightMapFull
            | Counter::FilesStatsMapFull
            | Counter::FilesEventsDropped => "files",
            Counter::PythonSamplesDropped | Counter::PythonCallsMapFull => "python",
            Counter::ProtocolsInflightMapFull
            | Counter::ProtocolsEventsDropped
            | Counter::ProtocolsProcsMapFull
            | Counter::SqliteMapFull
            | Counter::SqliteEventsDropped
            | Counter::TlsNoSocket => "protocols",
        }
    }

    /// snake_case name used in the manifest and the status line.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::TargetsMapFull => "targets_map_full",
            Counter::SyscallsInflightMapFull
            | Counter::BlockInflightMapFull
            | Counter::FilesInflightMapFull
            | Counter::ProtocolsInflightMapFull => "inflight_map_full",
            Counter::SyscallsStatsMapFull
            | Counter::BlockStatsMapFull
            | Counter::FilesStatsMapFull => "stats_map_full",
            Counter::SyscallEventsDropped
            | Counter::BlockEventsDropped
            | Counter::FilesEventsDropped
            | Counter::ProtocolsEventsDropped => "events_dropped",
            Counter::PythonSamplesDropped => "samples_dropped",
            Counter::PythonCallsMapFull => "calls_map_full",
            Counter::ProtocolsProcsMapFull => "procs_map_full",
            Counter::SqliteMapFull => "sqlite_map_full",
            Counter::SqliteEventsDropped => "sqlite_events_dropped",
            Counter::SyscallsCutAtStart => "calls_cut_at_start",
            Counter::TlsNoSocket => "tls_without_socket",
        }
    }
}
