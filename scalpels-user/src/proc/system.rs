//! The whole machine at one instant: /proc/stat, /proc/meminfo and /proc/loadavg through the
//! `procfs` crate, and what its counters changed by since the previous look.

use anyhow::{Context as _, Result};
use procfs::{Current as _, CurrentSI as _, KernelStats, LoadAverage, Meminfo};

use super::counters::{change, change_of};

/// Clock ticks all CPUs together spent in each state (`cpu` line of /proc/stat); the states
/// added after Linux 2.6.0 are `None` on kernels without them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: Option<u64>,
    pub irq: Option<u64>,
    pub softirq: Option<u64>,
    pub steal: Option<u64>,
}

impl CpuTicks {
    fn since(&self, before: &Self) -> Self {
        Self {
            user: change(self.user, before.user),
            nice: change(self.nice, before.nice),
            system: change(self.system, before.system),
            idle: change(self.idle, before.idle),
            iowait: change_of(self.iowait, before.iowait),
            irq: change_of(self.irq, before.irq),
            softirq: change_of(self.softirq, before.softirq),
            steal: change_of(self.steal, before.steal),
        }
    }
}

/// /proc/meminfo, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub free: u64,
    /// Since Linux 3.14.
    pub available: Option<u64>,
    pub buffers: u64,
    pub cached: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SystemSample {
    pub cpu: CpuTicks,
    pub cpus: u32,
    pub context_switches: u64,
    pub processes_forked: u64,
    pub procs_running: Option<u32>,
    pub procs_blocked: Option<u32>,
    pub memory: Memory,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
}

/// /proc/loadavg has two decimals; `procfs` parses them as f32, whose f64 would print as
/// 0.5199999809 for 0.52.
fn load_average(value: f32) -> f64 {
    (f64::from(value) * 100.0).round() / 100.0
}

impl SystemSample {
    pub fn read() -> Result<Self> {
        let stat = KernelStats::current().context("reading /proc/stat")?;
        let memory = Meminfo::current().context("reading /proc/meminfo")?;
        let load = LoadAverage::current().context("reading /proc/loadavg")?;
        let cpu = &stat.total;
        Ok(Self {
            cpu: CpuTicks {
                user: cpu.user,
                nice: cpu.nice,
                system: cpu.system,
                idle: cpu.idle,
                iowait: cpu.iowait,
                irq: cpu.irq,
                softirq: cpu.softirq,
                steal: cpu.steal,
            },
            cpus: u32::try_from(stat.cpu_time.len()).unwrap_or(u32::MAX),
            context_switches: stat.ctxt,
            processes_forked: stat.processes,
            procs_running: stat.procs_running,
            procs_blocked: stat.procs_blocked,
            memory: Memory {
                total: memory.mem_total,
                free: memory.mem_free,
                available: memory.mem_available,
                buffers: memory.buffers,
                cached: memory.cached,
                swap_total: memory.swap_total,
                swap_free: memory.swap_free,
            },
            load: [load.one, load.five, load.fifteen].map(load_average),
        })
    }

    /// This sample with its counters (CPU time, context switches, forks) replaced by what they
    /// grew by since `before`; gauges stay as they are now.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            cpu: self.cpu.since(&before.cpu),
            context_switches: change(self.context_switches, before.context_switches),
            processes_forked: change(self.processes_forked, before.processes_forked),
            ..*self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_change_and_gauges_stay() {
        let before = SystemSample {
            cpu: CpuTicks {
                user: 100,
                idle: 1000,
                iowait: Some(50),
                ..CpuTicks::default()
            },
            context_switches: 10_000,
            processes_forked: 700,
            procs_running: Some(3),
            ..SystemSample::default()
        };
        let now = SystemSample {
            cpu: CpuTicks {
                user: 150,
                idle: 1180,
                // iowait may go back: no wrap.
                iowait: Some(40),
                ..CpuTicks::default()
            },
            context_switches: 12_500,
            processes_forked: 705,
            procs_running: Some(1),
            memory: Memory {
                total: 1 << 30,
                ..Memory::default()
            },
            load: [0.5, 0.25, 0.1],
            ..SystemSample::default()
        };
        let row = now.since(&before);
        assert_eq!(row.cpu.user, 50);
        assert_eq!(row.cpu.idle, 180);
        assert_eq!(row.cpu.iowait, Some(0));
        assert_eq!(row.cpu.steal, None);
        assert_eq!(row.context_switches, 2500);
        assert_eq!(row.processes_forked, 5);
        assert_eq!(row.procs_running, Some(1));
        assert_eq!(row.memory.total, 1 << 30);
        assert_eq!(row.load, [0.5, 0.25, 0.1]);
    }

    #[test]
    fn load_averages_keep_their_two_decimals() {
        assert_eq!(load_average(0.52), 0.52);
        assert_eq!(load_average(12.07), 12.07);
    }

    #[test]
    fn this_machine_can_be_read() {
        let now = SystemSample::read().expect("readable /proc");
        assert!(now.cpus >= 1);
        assert!(now.memory.total > 0);
        assert!(now.cpu.user + now.cpu.system > 0);
    }
}
