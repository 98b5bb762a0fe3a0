//! Per-disk (/proc/diskstats) and per-interface (/proc/net/dev) counters through the `procfs`
//! crate, and their changes over an interval.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use procfs::{Current as _, DiskStats};

use super::counters::change;

/// /proc/diskstats counts sectors of 512 bytes whatever the device's block size.
const SECTOR_BYTES: u64 = 512;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCounters {
    /// Completed requests.
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    /// Time with at least one request in flight.
    pub io_time_ms: u64,
}

impl DiskCounters {
    fn since(&self, before: &Self) -> Self {
        Self {
            reads: change(self.reads, before.reads),
            writes: change(self.writes, before.writes),
            read_bytes: change(self.read_bytes, before.read_bytes),
            write_bytes: change(self.write_bytes, before.write_bytes),
            io_time_ms: change(self.io_time_ms, before.io_time_ms),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

impl NetCounters {
    fn since(&self, before: &Self) -> Self {
        Self {
            rx_bytes: change(self.rx_bytes, before.rx_bytes),
            rx_packets: change(self.rx_packets, before.rx_packets),
            tx_bytes: change(self.tx_bytes, before.tx_bytes),
            tx_packets: change(self.tx_packets, before.tx_packets),
            rx_errors: change(self.rx_errors, before.rx_errors),
            tx_errors: change(self.tx_errors, before.tx_errors),
            rx_dropped: change(self.rx_dropped, before.rx_dropped),
            tx_dropped: change(self.tx_dropped, before.tx_dropped),
        }
    }
}

pub fn read_disks() -> Result<BTreeMap<String, DiskCounters>> {
    let disks = DiskStats::current().context("reading /proc/diskstats")?;
    Ok(disks
        .0
        .into_iter()
        .map(|d| {
            let counters = DiskCounters {
                reads: d.reads,
                writes: d.writes,
                read_bytes: d.sectors_read * SECTOR_BYTES,
                write_bytes: d.sectors_written * SECTOR_BYTES,
                io_time_ms: d.time_in_progress,
            };
            (d.name, counters)
        })
        .collect())
}

pub fn read_interfaces() -> Result<BTreeMap<String, NetCounters>> {
    let interfaces = procfs::net::dev_status().context("reading /proc/net/dev")?;
    Ok(interfaces
        .into_iter()
        .map(|(name, i)| {
            let counters = NetCounters {
                rx_bytes: i.recv_bytes,
                rx_packets: i.recv_packets,
                tx_bytes: i.sent_bytes,
                tx_packets: i.sent_packets,
                rx_errors: i.recv_errs,
                tx_errors: i.sent_errs,
                rx_dropped: i.recv_drop,
                tx_dropped: i.sent_drop,
            };
            (name, counters)
        })
        .collect())
}

/// Loop and RAM disks: every system has dozens, nearly always idle.
fn is_idle_virtual_disk(name: &str, change: &DiskCounters) -> bool {
    (name.starts_with("loop") || name.starts_with("ram")) && *change == DiskCounters::default()
}

/// Per-disk changes since `before`, without idle loop and RAM disks. A disk absent from
/// `before` (attached since) gets its first row at the next interval.
pub fn disk_changes(
    before: &BTreeMap<String, DiskCounters>,
    now: &BTreeMap<String, DiskCounters>,
) -> Vec<(String, DiskCounters)> {
    now.iter()
        .filter_map(|(name, counters)| {
            let change = counters.since(before.get(name)?);
            (!is_idle_virtual_disk(name, &change)).then(|| (name.clone(), change))
        })
        .collect()
}

/// Per-interface changes since `before`; an interface absent from `before` (created since)
/// gets its first row at the next interval.
pub fn interface_changes(
    before: &BTreeMap<String, NetCounters>,
    now: &BTreeMap<String, NetCounters>,
) -> Vec<(String, NetCounters)> {
    now.iter()
        .filter_map(|(name, counters)| Some((name.clone(), counters.since(before.get(name)?))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(reads: u64, write_bytes: u64) -> DiskCounters {
        DiskCounters {
            reads,
            write_bytes,
            ..DiskCounters::default()
        }
    }

    #[test]
    fn disks_change_idle_loops_are_skipped_new_disks_wait() {
        let before = BTreeMap::from([
            ("sda".to_owned(), disk(10, 4096)),
            ("loop0".to_owned(), disk(5, 0)),
            ("loop1".to_owned(), disk(5, 0)),
            ("ram0".to_owned(), disk(0, 0)),
        ]);
        let now = BTreeMap::from([
            ("sda".to_owned(), disk(10, 4096)),
            ("loop0".to_owned(), disk(5, 0)),
            ("loop1".to_owned(), disk(7, 0)),
            ("ram0".to_owned(), disk(0, 0)),
            ("loop2".to_owned(), disk(1, 512)),
        ]);
        assert_eq!(
            disk_changes(&before, &now),
            [
                ("loop1".to_owned(), disk(2, 0)),
                // A real disk is kept when idle: its series has no holes.
                ("sda".to_owned(), disk(0, 0)),
            ]
        );
    }

    #[test]
    fn interfaces_change() {
        let counters = |rx_bytes| NetCounters {
            rx_bytes,
            tx_packets: 3,
            ..NetCounters::default()
        };
        let before = BTreeMap::from([("eth0".to_owned(), counters(1000))]);
        let now = BTreeMap::from([
            ("eth0".to_owned(), counters(1500)),
            ("veth1".to_owned(), counters(10)),
        ]);
        let changes = interface_changes(&before, &now);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1.rx_bytes, 500);
        assert_eq!(changes[0].1.tx_packets, 0);
    }

    #[test]
    fn this_machine_can_be_read() {
        assert!(read_interfaces().expect("/proc/net/dev").contains_key("lo"));
        read_disks().expect("/proc/diskstats");
    }
}
