//! Reads the kernel's loss counters (`tracers::counters`), summed over CPUs.

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use tracers::counters::{COUNTERS_MAP, Counter};

use crate::tracer::Drops;

pub struct Counters {
    map: PerCpuArray<MapData, u64>,
}

impl Counters {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let map = ebpf
            .take_map(COUNTERS_MAP)
            .context("eBPF object has no counters map")?;
        Ok(Self {
            map: PerCpuArray::try_from(map)?,
        })
    }

    /// The counters of `tracer`, by name.
    pub fn of(&self, tracer: &str) -> Drops {
        Counter::ALL
            .into_iter()
            .filter(|c| c.tracer() == tracer)
            .map(|c| {
                let total = self
                    .map
                    .get(&(c as u32), 0)
                    .map(|v| v.iter().sum())
                    .unwrap_or(0);
                (c.name(), total)
            })
            .collect()
    }
}
