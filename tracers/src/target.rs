//! The in-kernel target set: which tasks the tracers record.
//!
//! Userspace fills the maps (process ids for `--pid`, command and name targets; cgroup ids for
//! systemd services); the kernel follows forks and exits so the set stays current between two
//! re-resolutions.

/// Hash map `u32 tgid -> u8`: processes to trace. Forked children of targets are added in the
/// kernel (threads too, harmlessly: a thread id never equals another live process's tgid).
pub const TARGET_TGIDS_MAP: &str = "TARGET_TGIDS";
/// Hash map `u64 cgroup id -> u8`: cgroup v2 directories whose tasks are traced.
pub const TARGET_CGROUPS_MAP: &str = "TARGET_CGROUPS";
/// Global (read-only after load) holding a [`TargetConfig`].
pub const TARGET_CONFIG_GLOBAL: &str = "TARGET_CONFIG";

pub const TARGET_TGIDS_MAX: u32 = 16384;
pub const TARGET_CGROUPS_MAX: u32 = 1024;

/// How the kernel decides that the current task is a target, and where the fork and exit
/// tracepoints keep their fields (learned from their tracefs `format` files).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetConfig {
    /// Non-zero: a task is a target when its tgid is in [`TARGET_TGIDS_MAP`].
    pub by_tgid: u32,
    /// Non-zero: a task is a target when its cgroup id is in [`TARGET_CGROUPS_MAP`].
    pub by_cgroup: u32,
    /// Byte offset of `child_pid` in the `sched_process_fork` record.
    pub fork_child_pid_offset: u32,
    /// Non-zero: the process id of the loader itself, never a target.
    pub loader_tgid: u32,
    /// Byte offset of `group_dead` in the `sched_process_exit` record (recent kernels); 0 where
    /// the record has none, and a leader's exit is then taken for its process's.
    pub exit_group_dead_offset: u32,
}

crate::user_pod!(TargetConfig);
