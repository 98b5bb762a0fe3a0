//! The kernel's target maps, as userspace sees them.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};
use tracers::target::{TARGET_CGROUPS_MAP, TARGET_TGIDS_MAP};

use super::Members;

pub struct TargetSet {
    tgids: HashMap<MapData, u32, u8>,
    cgroups: HashMap<MapData, u64, u8>,
}

/// Whether `pid` is a live process (not a thread of another one).
fn is_process(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .is_some_and(|tgid| tgid.trim() == pid.to_string())
    })
}

impl TargetSet {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let mut take = |name| {
            ebpf.take_map(name)
                .with_context(|| format!("eBPF object has no map {name}"))
        };
        Ok(Self {
            tgids: HashMap::try_from(take(TARGET_TGIDS_MAP)?)?,
            cgroups: HashMap::try_from(take(TARGET_CGROUPS_MAP)?)?,
        })
    }

    /// Adds members the kernel does not have yet (the kernel removes exited ones itself),
    /// calling `before_adding` with each new process first.
    pub fn add(
        &mut self,
        members: &Members,
        mut before_adding: impl FnMut(u32) -> Result<()>,
    ) -> Result<()> {
        for pid in &members.pids {
            if self.tgids.get(pid, 0).is_err() {
                before_adding(*pid)?;
                self.tgids
                    .insert(pid, 1, 0)
                    .with_context(|| format!("adding pid {pid} to the target set"))?;
            }
        }
        for id in &members.cgroup_ids {
            if self.cgroups.get(id, 0).is_err() {
                self.cgroups
                    .insert(id, 1, 0)
                    .with_context(|| format!("adding cgroup {id} to the target set"))?;
            }
        }
        Ok(())
    }

    /// Live processes in the set: the given ones and the children the kernel added.
    pub fn live_processes(&self) -> BTreeSet<u32> {
        self.tgids
            .keys()
            .flatten()
            .filter(|&pid| is_process(pid))
            .collect()
    }
}
