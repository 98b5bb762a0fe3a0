//! The `block` tracer: remembers each request when it starts (in the context of the task that
//! submitted it, which decides whether it is recorded), when it is issued to the driver, and on
//! completion aggregates it per (device, operation) and optionally sends it as an event.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuHashMap, RingBuf},
    programs::TracePointContext,
};
use tracers::{
    block::{
        BlockConfig, BlockFields, BlockInflight, BlockIoEvent, BlockRqKey, BlockStats,
        BlockStatsKey, EVENTS_BYTES, INFLIGHT_MAX, RWBS_BYTES, STATS_MAX, decode_rwbs,
    },
    counters::Counter,
    histogram,
};

use crate::{counters::bump, target::is_target, wakeup};

#[map]
static BLOCK_INFLIGHT: HashMap<BlockRqKey, BlockInflight> =
    HashMap::with_max_entries(INFLIGHT_MAX, 0);

#[map]
static BLOCK_STATS: PerCpuHashMap<BlockStatsKey, BlockStats> =
    PerCpuHashMap::with_max_entries(STATS_MAX, 0);

#[map]
static BLOCK_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

const NO_FIELDS: BlockFields = BlockFields {
    dev: 0,
    sector: 0,
    rwbs: 0,
    nr_sector: 0,
    error: 0,
};

#[unsafe(no_mangle)]
static BLOCK_CONFIG: BlockConfig = BlockConfig {
    all: 0,
    events: 0,
    start: NO_FIELDS,
    issue: NO_FIELDS,
    complete: NO_FIELDS,
};

/// Initial value of a new statistics entry (in .rodata, not on the 512-byte stack).
static ZERO_STATS: BlockStats = BlockStats {
    requests: 0,
    bytes: 0,
    errors: 0,
    total_ns: 0,
    queue_ns: 0,
    hist: [0; histogram::HIST_SLOTS],
};

const BPF_NOEXIST: u64 = 1;

#[inline(always)]
fn config() -> BlockConfig {
    // SAFETY: read of our own global, volatile so the loader's value is used.
    unsafe { core::ptr::read_volatile(&BLOCK_CONFIG) }
}

/// The request a record is about.
#[inline(always)]
fn request(ctx: &TracePointContext, fields: &BlockFields) -> Option<BlockRqKey> {
    // SAFETY: offsets come from the tracepoint's format file.
    unsafe {
        Some(BlockRqKey {
            dev: ctx.read_at::<u32>(fields.dev as usize).ok()?,
            _pad: 0,
            sector: ctx.read_at::<u64>(fields.sector as usize).ok()?,
        })
    }
}

/// block_io_start (or block_rq_insert): a request begins, in its submitter's context.
#[tracepoint(category = "block", name = "block_io_start")]
pub fn block_start(ctx: TracePointContext) -> u32 {
    let config = config();
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let target = is_target(tgid);
    if !target && config.all == 0 {
        return 0;
    }
    let Some(key) = request(&ctx, &config.start) else {
        return 0;
    };
    let inflight = BlockInflight {
        // SAFETY: helper without arguments.
        start_ns: unsafe { bpf_ktime_get_ns() },
        issue_ns: 0,
        tgid,
        tid: pid_tgid as u32,
        target: u32::from(target),
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or_default(),
    };
    if BLOCK_INFLIGHT.insert(&key, &inflight, 0).is_err() {
        bump(Counter::BlockInflightMapFull);
    }
    0
}

/// block_rq_issue: the request goes to the driver; the time since start was queueing.
#[tracepoint(category = "block", name = "block_rq_issue")]
pub fn block_issue(ctx: TracePointContext) -> u32 {
    let Some(key) = request(&ctx, &config().issue) else {
        return 0;
    };
    if let Some(inflight) = BLOCK_INFLIGHT.get_ptr_mut(&key) {
        // SAFETY: helper without arguments; the entry is ours until completion removes it.
        unsafe { (*inflight).issue_ns = bpf_ktime_get_ns() };
    }
    0
}

/// block_rq_complete: account the request and, when asked, send it.
#[tracepoint(category = "block", name = "block_rq_complete")]
pub fn block_done(ctx: TracePointContext) -> u32 {
    let config = config();
    let fields = config.complete;
    let Some(key) = request(&ctx, &fields) else {
        return 0;
    };
    // SAFETY: the entry is copied out before it is removed.
    let Some(inflight) = (unsafe { BLOCK_INFLIGHT.get(&key) }).copied() else {
        return 0;
    };
    let _ = BLOCK_INFLIGHT.remove(&key);
    // SAFETY: helper without arguments; offsets come from the format file.
    let (done_ns, nr_sector, error, rwbs) = unsafe {
        (
            bpf_ktime_get_ns(),
            ctx.read_at::<u32>(fields.nr_sector as usize).unwrap_or(0),
            ctx.read_at::<i32>(fields.error as usize).unwrap_or(0),
            ctx.read_at::<[u8; RWBS_BYTES]>(fields.rwbs as usize)
                .unwrap_or([0; RWBS_BYTES]),
        )
    };
    let (op, flags) = decode_rwbs(&rwbs);
    let issue_ns = if inflight.issue_ns == 0 {
        inflight.start_ns
    } else {
        inflight.issue_ns
    };
    let bytes = nr_sector.saturating_mul(512);
    account(
        &BlockStatsKey { dev: key.dev, op },
        bytes,
        error,
        done_ns.saturating_sub(inflight.start_ns),
        issue_ns.saturating_sub(inflight.start_ns),
    );
    if config.events == 0 {
        return 0;
    }
    let Some(mut entry) = BLOCK_EVENTS.reserve::<BlockIoEvent>(0) else {
        bump(Counter::BlockEventsDropped);
        return 0;
    };
    entry.write(BlockIoEvent {
        start_ns: inflight.start_ns,
        issue_ns,
        done_ns,
        sector: key.sector,
        dev: key.dev,
        bytes,
        tgid: inflight.tgid,
        tid: inflight.tid,
        op,
        flags,
        error,
        target: inflight.target,
        comm: inflight.comm,
    });
    entry.submit(wakeup::flags(&BLOCK_EVENTS, EVENTS_BYTES));
    0
}

/// Adds one completed request to this CPU's statistics of its (device, operation).
#[inline(always)]
fn account(key: &BlockStatsKey, bytes: u32, error: i32, total_ns: u64, queue_ns: u64) {
    let stats = match BLOCK_STATS.get_ptr_mut(key) {
        Some(stats) => stats,
        None => {
            if BLOCK_STATS.insert(key, &ZERO_STATS, BPF_NOEXIST).is_err() {
                // Another CPU's insert races are harmless for a per-CPU map; a full map is not.
                if BLOCK_STATS.get_ptr_mut(key).is_none() {
                    bump(Counter::BlockStatsMapFull);
                    return;
                }
            }
            let Some(stats) = BLOCK_STATS.get_ptr_mut(key) else {
                return;
            };
            stats
        }
    };
    // SAFETY: this CPU's copy; programs do not preempt each other on one CPU.
    let stats = unsafe { &mut *stats };
    stats.requests += 1;
    stats.bytes += u64::from(bytes);
    stats.total_ns += total_ns;
    stats.queue_ns += queue_ns;
    if error != 0 {
        stats.errors += 1;
    }
    if let Some(bucket) = stats.hist.get_mut(histogram::slot(total_ns)) {
        *bucket += 1;
    }
}
