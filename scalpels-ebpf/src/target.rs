//! The target set: "is the current task one we trace?", kept current across forks and exits.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid},
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};
use tracers::{
    counters::Counter,
    target::{TARGET_CGROUPS_MAX, TARGET_TGIDS_MAX, TargetConfig},
};

use crate::counters::bump;

#[map]
static TARGET_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(TARGET_TGIDS_MAX, 0);

#[map]
static TARGET_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(TARGET_CGROUPS_MAX, 0);

#[unsafe(no_mangle)]
static TARGET_CONFIG: TargetConfig = TargetConfig {
    by_tgid: 0,
    by_cgroup: 0,
    fork_child_pid_offset: 0,
    loader_tgid: 0,
    exit_group_dead_offset: 0,
};

#[inline(always)]
fn config() -> TargetConfig {
    // SAFETY: a read of our own global; volatile so the loader's value is read, not the
    // compile-time zero.
    unsafe { core::ptr::read_volatile(&TARGET_CONFIG) }
}

/// Whether the current task belongs to a target process or cgroup.
#[inline(always)]
pub fn is_target(tgid: u32) -> bool {
    let config = config();
    if tgid == config.loader_tgid {
        return false;
    }
    // SAFETY: the values are only tested for presence.
    if config.by_tgid != 0 && unsafe { TARGET_TGIDS.get(&tgid) }.is_some() {
        return true;
    }
    if config.by_cgroup != 0 {
        // SAFETY: helper without arguments.
        let cgroup = unsafe { bpf_get_current_cgroup_id() };
        return unsafe { TARGET_CGROUPS.get(&cgroup) }.is_some();
    }
    false
}

/// Children of target processes become targets before they run.
#[tracepoint(category = "sched", name = "sched_process_fork")]
pub fn target_fork(ctx: TracePointContext) -> u32 {
    let config = config();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: presence test only.
    if config.by_tgid == 0 || unsafe { TARGET_TGIDS.get(&tgid) }.is_none() {
        return 0;
    }
    // SAFETY: the offset comes from the tracepoint's format file.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(config.fork_child_pid_offset as usize) }) else {
        return 0;
    };
    if TARGET_TGIDS.insert(&(child as u32), &1, 0).is_err() {
        bump(Counter::TargetsMapFull);
    }
    0
}

/// Exited tasks leave the set, so a recycled pid is never mistaken for a target. A process
/// leaves it when its last thread exits: a leader that called `pthread_exit` leaves its other
/// threads traced.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn target_exit(ctx: TracePointContext) -> u32 {
    if config().by_tgid == 0 {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // Threads are in the set by their own ids too (forks of targets are added).
    if tid != tgid {
        let _ = TARGET_TGIDS.remove(&tid);
    }
    if process_exits(&ctx, tgid, tid) {
        let _ = TARGET_TGIDS.remove(&tgid);
    }
    0
}

/// In a `sched_process_exit` program: whether the exiting thread is the last of its process
/// (`group_dead`; where the record lacks it, whether it is the leader).
#[inline(always)]
pub fn process_exits(ctx: &TracePointContext, tgid: u32, tid: u32) -> bool {
    let offset = config().exit_group_dead_offset;
    if offset == 0 {
        return tid == tgid;
    }
    // SAFETY: the offset comes from the tracepoint's format file.
    unsafe { ctx.read_at::<u8>(offset as usize) }.unwrap_or(0) != 0
}
