//! The `block` tracer: block-layer requests from start to completion, one event each, plus
//! per (device, operation) counters and latency histograms aggregated in the kernel.

use crate::histogram::HIST_SLOTS;

/// Hash map [`BlockRqKey`] -> [`BlockInflight`]: requests started and not yet completed.
pub const INFLIGHT_MAP: &str = "BLOCK_INFLIGHT";
/// Per-CPU hash map [`BlockStatsKey`] -> [`BlockStats`], cumulative since attach.
pub const STATS_MAP: &str = "BLOCK_STATS";
/// Ring buffer of [`BlockIoEvent`].
pub const EVENTS_MAP: &str = "BLOCK_EVENTS";
/// Global (read-only after load) holding a [`BlockConfig`].
pub const CONFIG_GLOBAL: &str = "BLOCK_CONFIG";

pub const INFLIGHT_MAX: u32 = 16384;
pub const STATS_MAX: u32 = 1024;
pub const EVENTS_BYTES: u32 = 2 << 20;

/// Bytes of the tracepoints' `rwbs` field that are decoded (the kernel's is 10, of which
/// at most 6 are used: preflush, op, FUA, ahead, sync, meta).
pub const RWBS_BYTES: usize = 8;

/// The operation of a request, from the kernel's `rwbs` string.
pub mod op {
    pub const OTHER: u32 = 0;
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const FLUSH: u32 = 3;
    pub const DISCARD: u32 = 4;
    pub const SECURE_ERASE: u32 = 5;

    pub const fn name(op: u32) -> &'static str {
        match op {
            READ => "read",
            WRITE => "write",
            FLUSH => "flush",
            DISCARD => "discard",
            SECURE_ERASE => "secure_erase",
            _ => "other",
        }
    }
}

/// Request flags, from the kernel's `rwbs` string.
pub mod flag {
    /// `F` before the operation: a cache flush precedes the data.
    pub const PREFLUSH: u32 = 1;
    /// `F` after the operation: forced unit access.
    pub const FUA: u32 = 2;
    /// `S`: synchronous.
    pub const SYNC: u32 = 4;
    /// `M`: file-system metadata.
    pub const META: u32 = 8;
    /// `A`: read-ahead.
    pub const AHEAD: u32 = 16;
}

/// Decodes an `rwbs` string ("WS", "FWFSM", "R", "FN", ...) into (operation, flags). Shared by
/// the kernel side (statistics key) and tests; NUL ends the string.
#[inline(always)]
pub fn decode_rwbs(rwbs: &[u8; RWBS_BYTES]) -> (u32, u32) {
    let mut operation = op::OTHER;
    let mut seen_op = false;
    let mut no_data = false;
    let mut flags = 0;
    for &c in rwbs {
        match c {
            0 => break,
            b'F' if seen_op => flags |= flag::FUA,
            b'F' => flags |= flag::PREFLUSH,
            b'R' => (operation, seen_op) = (op::READ, true),
            b'W' => (operation, seen_op) = (op::WRITE, true),
            b'D' => (operation, seen_op) = (op::DISCARD, true),
            b'E' => (operation, seen_op) = (op::SECURE_ERASE, true),
            b'N' => (no_data, seen_op) = (true, true),
            b'S' => flags |= flag::SYNC,
            b'M' => flags |= flag::META,
            b'A' => flags |= flag::AHEAD,
            _ => {}
        }
    }
    if no_data && flags & flag::PREFLUSH != 0 {
        operation = op::FLUSH;
    }
    (operation, flags)
}

/// A request in flight, keyed as the tracepoints identify it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockRqKey {
    /// Kernel `dev_t` (major << 20 | minor).
    pub dev: u32,
    pub _pad: u32,
    pub sector: u64,
}

/// What is known of a request between start and completion.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockInflight {
    pub start_ns: u64,
    /// 0 until the request is issued to the driver.
    pub issue_ns: u64,
    /// The task that started the request.
    pub tgid: u32,
    pub tid: u32,
    /// Non-zero when the task was a target (else recorded only under `--block-all`).
    pub target: u32,
    pub _pad: u32,
    pub comm: [u8; 16],
}

/// One completed request.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockIoEvent {
    /// Kernel monotonic times.
    pub start_ns: u64,
    pub issue_ns: u64,
    pub done_ns: u64,
    pub sector: u64,
    pub dev: u32,
    /// Completed bytes.
    pub bytes: u32,
    pub tgid: u32,
    pub tid: u32,
    pub op: u32,
    pub flags: u32,
    pub error: i32,
    pub target: u32,
    pub comm: [u8; 16],
}

/// Statistics key: one row per interval per key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockStatsKey {
    pub dev: u32,
    pub op: u32,
}

/// Cumulative statistics of one key on one CPU (completions run on any CPU: userspace sums).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockStats {
    pub requests: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Start to completion.
    pub total_ns: u64,
    /// Start to issue (time in the block layer's queues).
    pub queue_ns: u64,
    pub hist: [u64; HIST_SLOTS],
}

impl Default for BlockStats {
    fn default() -> Self {
        Self {
            requests: 0,
            bytes: 0,
            errors: 0,
            total_ns: 0,
            queue_ns: 0,
            hist: [0; HIST_SLOTS],
        }
    }
}

/// Field offsets of one tracepoint record (from its tracefs format file).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockFields {
    pub dev: u32,
    pub sector: u32,
    /// `rwbs` (start and completion records), or 0 where unused.
    pub rwbs: u32,
    /// `nr_sector` of completion records, or 0 where unused.
    pub nr_sector: u32,
    /// `error` of completion records, or 0 where unused.
    pub error: u32,
}

/// Load-time configuration of the block tracer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockConfig {
    /// Non-zero: record requests of every task (`--block-all`), not only of targets.
    pub all: u32,
    /// Non-zero: send one [`BlockIoEvent`] per request (`--block-events on`).
    pub events: u32,
    /// The start tracepoint (`block_io_start`, or `block_rq_insert` on older kernels).
    pub start: BlockFields,
    pub issue: BlockFields,
    pub complete: BlockFields,
}

crate::user_pod!(
    BlockRqKey,
    BlockInflight,
    BlockIoEvent,
    BlockStatsKey,
    BlockStats,
    BlockConfig
);

#[cfg(test)]
mod tests {
    use super::*;

    fn rwbs(s: &str) -> [u8; RWBS_BYTES] {
        let mut out = [0; RWBS_BYTES];
        out[..s.len()].copy_from_slice(s.as_bytes());
        out
    }

    #[test]
    fn decodes_the_kernels_rwbs_strings() {
        assert_eq!(decode_rwbs(&rwbs("R")), (op::READ, 0));
        assert_eq!(decode_rwbs(&rwbs("RA")), (op::READ, flag::AHEAD));
        assert_eq!(decode_rwbs(&rwbs("WS")), (op::WRITE, flag::SYNC));
        assert_eq!(
            decode_rwbs(&rwbs("FWFSM")),
            (
                op::WRITE,
                flag::PREFLUSH | flag::FUA | flag::SYNC | flag::META
            )
        );
        assert_eq!(decode_rwbs(&rwbs("FN")), (op::FLUSH, flag::PREFLUSH));
        assert_eq!(decode_rwbs(&rwbs("N")), (op::OTHER, 0));
        assert_eq!(decode_rwbs(&rwbs("D")), (op::DISCARD, 0));
    }
}
