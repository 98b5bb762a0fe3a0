//! One look at a process in /proc/PID (`stat`, `status`, `io`, `smaps_rollup`, `cmdline`, `fd/`)
//! through the `procfs` crate, and what its counters changed by since the previous look.

use std::time::{Duration, Instant};

use procfs::process::Process;

use super::{
    cmdline,
    counters::{change, change_of},
};

/// Longest `cmdline` kept, in characters: enough to tell services apart, short enough to keep
/// the dictionary small.
const CMDLINE_CHARS: usize = 256;

/// A process's cumulative counters. Those of `status` and `io` are `None` when the file could
/// not be read (permission, or the process exited between two reads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessCounters {
    pub cpu_user_ticks: u64,
    pub cpu_system_ticks: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_ctxt_switches: Option<u64>,
    pub nonvoluntary_ctxt_switches: Option<u64>,
    pub io: Option<IoCounters>,
}

/// `/proc/PID/io`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    pub rchar: u64,
    pub wchar: u64,
    pub syscr: u64,
    pub syscw: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
}

impl IoCounters {
    fn since(&self, before: &Self) -> Self {
        Self {
            rchar: change(self.rchar, before.rchar),
            wchar: change(self.wchar, before.wchar),
            syscr: change(self.syscr, before.syscr),
            syscw: change(self.syscw, before.syscw),
            read_bytes: change(self.read_bytes, before.read_bytes),
            write_bytes: change(self.write_bytes, before.write_bytes),
        }
    }
}

impl ProcessCounters {
    /// A new process's counters: the kernel starts every one at zero on fork (and keeps them
    /// across exec).
    pub fn at_birth() -> Self {
        Self {
            voluntary_ctxt_switches: Some(0),
            nonvoluntary_ctxt_switches: Some(0),
            io: Some(IoCounters::default()),
            ..Self::default()
        }
    }

    /// What each counter grew by since `before`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            cpu_user_ticks: change(self.cpu_user_ticks, before.cpu_user_ticks),
            cpu_system_ticks: change(self.cpu_system_ticks, before.cpu_system_ticks),
            minor_faults: change(self.minor_faults, before.minor_faults),
            major_faults: change(self.major_faults, before.major_faults),
            voluntary_ctxt_switches: change_of(
                self.voluntary_ctxt_switches,
                before.voluntary_ctxt_switches,
            ),
            nonvoluntary_ctxt_switches: change_of(
                self.nonvoluntary_ctxt_switches,
                before.nonvoluntary_ctxt_switches,
            ),
            io: self
                .io
                .zip(before.io)
                .map(|(now, before)| now.since(&before)),
        }
    }
}

/// A process as seen at one instant: gauges as they are, counters since it started.
#[derive(Clone, Debug)]
pub struct ProcessSample {
    /// Clock ticks after boot at which it started: with the pid, what tells it from a later
    /// process that reuses its pid.
    pub start_ticks: u64,
    pub comm: String,
    /// Space-joined argv (secrets replaced, see `cmdline`), cut to [`CMDLINE_CHARS`]; `None` for kernel threads and exited
    /// processes, which have none.
    pub cmdline: Option<String>,
    /// One letter, as `ps` shows it: R running, S sleeping, D disk sleep, Z zombie, ...
    pub state: String,
    pub threads: u32,
    /// `None` without an address space (kernel threads, exited processes).
    pub rss_bytes: Option<u64>,
    pub vsize_bytes: Option<u64>,
    pub pss_bytes: Option<u64>,
    pub fds: Option<u32>,
    pub counters: ProcessCounters,
}

fn kib(value: Option<u64>) -> Option<u64> {
    value.map(|kib| kib * 1024)
}

fn joined_cmdline(argv: Vec<String>) -> Option<String> {
    let joined = argv.join(" ");
    match joined.char_indices().nth(CMDLINE_CHARS) {
        _ if joined.is_empty() => None,
        Some((cut, _)) => Some(joined[..cut].to_owned()),
        None => Some(joined),
    }
}

/// Whether a sample reads the process's PSS: `smaps_rollup` walks every page table of the
/// process under its memory-map lock, the dearest file a look reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pss {
    Read,
    Skip,
}

/// Reads process `pid`; `None` when it no longer exists (or its `stat` cannot be read). Its
/// command line has its secrets replaced unless `keep_cmdline`.
pub fn sample(pid: u32, keep_cmdline: bool, pss: Pss) -> Option<ProcessSample> {
    let process = Process::new(i32::try_from(pid).ok()?).ok()?;
    let stat = process.stat().ok()?;
    let status = process.status().ok();
    let io = process.io().ok().map(|io| IoCounters {
        rchar: io.rchar,
        wchar: io.wchar,
        syscr: io.syscr,
        syscw: io.syscw,
        read_bytes: io.read_bytes,
        write_bytes: io.write_bytes,
    });
    let pss_bytes = match pss {
        Pss::Read => process.smaps_rollup().ok().and_then(|rollup| {
            let total = rollup.memory_map_rollup.0.first()?;
            total.extension.map.get("Pss").copied()
        }),
        Pss::Skip => None,
    };
    let switches = context_switches(&process);
    Some(ProcessSample {
        start_ticks: stat.starttime,
        comm: stat.comm,
        cmdline: process
            .cmdline()
            .ok()
            .map(|argv| cmdline::stored(argv, keep_cmdline))
            .and_then(joined_cmdline),
        state: stat.state.to_string(),
        threads: u32::try_from(stat.num_threads).unwrap_or(0),
        rss_bytes: kib(status.as_ref().and_then(|s| s.vmrss)),
        vsize_bytes: kib(status.as_ref().and_then(|s| s.vmsize)),
        pss_bytes,
        fds: process
            .fd_count()
            .ok()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        counters: ProcessCounters {
            cpu_user_ticks: stat.utime,
            cpu_system_ticks: stat.stime,
            minor_faults: stat.minflt,
            major_faults: stat.majflt,
            voluntary_ctxt_switches: switches.map(|(voluntary, _)| voluntary),
            nonvoluntary_ctxt_switches: switches.map(|(_, nonvoluntary)| nonvoluntary),
            io,
        },
    })
}

/// (voluntary, involuntary) context switches of the process's live threads: each thread's
/// /proc/PID/task/TID/status counts its own only (the process's status, its main thread's).
/// Those of a thread that exited between two looks are lost with it.
fn context_switches(process: &Process) -> Option<(u64, u64)> {
    let mut total: Option<(u64, u64)> = None;
    for task in process.tasks().ok()?.flatten() {
        let Ok(status) = task.status() else { continue };
        let (Some(voluntary), Some(involuntary)) = (
            status.voluntary_ctxt_switches,
            status.nonvoluntary_ctxt_switches,
        ) else {
            continue;
        };
        let (v, i) = total.get_or_insert((0, 0));
        *v += voluntary;
        *i += involuntary;
    }
    total
}

/// What a process was at the previous look.
#[derive(Clone, Copy, Debug)]
pub struct Previous {
    pub start_ticks: u64,
    pub counters: ProcessCounters,
    /// The last PSS read, and when.
    pub pss: Option<(Instant, u64)>,
}

/// How often a process's PSS is read; the looks between carry the last reading. Reading it
/// every second cost the loader more than any other file (and the service its memory-map
/// lock for as long); memory shares move slowly.
pub const PSS_EVERY: Duration = Duration::from_secs(10);

impl Previous {
    /// Whether the next look at a process (last seen as `previous`) reads its PSS at `now`.
    pub fn pss_due(previous: Option<&Previous>, now: Instant) -> Pss {
        match previous.and_then(|p| p.pss) {
            Some((read_at, _)) if now.duration_since(read_at) < PSS_EVERY => Pss::Skip,
            _ => Pss::Read,
        }
    }
}

/// The PSS reading to keep for a process looked at `now` (at `read_at`): the one just read,
/// else the previous look's at the same process, which the sample then carries.
pub fn carry_pss(
    previous: Option<&Previous>,
    now: &mut ProcessSample,
    read_at: Instant,
) -> Option<(Instant, u64)> {
    if let Some(pss) = now.pss_bytes {
        return Some((read_at, pss));
    }
    let kept = previous
        .filter(|p| p.start_ticks == now.start_ticks)
        .and_then(|p| p.pss)?;
    now.pss_bytes = Some(kept.1);
    Some(kept)
}

/// The counters to subtract from a process's sample `now` to get its row: those of the previous
/// look at the same process; zeros for a process born since the trace started (all it counted,
/// it counted while traced); `None` for a process older than the trace seen for the first time,
/// whose sample now is only the baseline of its next row.
pub fn baseline(
    previous: Option<&Previous>,
    now: &ProcessSample,
    trace_start_ticks: u64,
) -> Option<ProcessCounters> {
    match previous {
        Some(p) if p.start_ticks == now.start_ticks => Some(p.counters),
        _ if now.start_ticks >= trace_start_ticks => Some(ProcessCounters::at_birth()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(cpu: u64, wchar: u64) -> ProcessCounters {
        ProcessCounters {
            cpu_user_ticks: cpu,
            cpu_system_ticks: cpu / 2,
            minor_faults: 10 * cpu,
            major_faults: 1,
            voluntary_ctxt_switches: Some(cpu + 3),
            nonvoluntary_ctxt_switches: None,
            io: Some(IoCounters {
                wchar,
                ..IoCounters::default()
            }),
        }
    }

    fn sample(start_ticks: u64, counters: ProcessCounters) -> ProcessSample {
        ProcessSample {
            start_ticks,
            comm: "python3".into(),
            cmdline: None,
            state: "R".into(),
            threads: 1,
            rss_bytes: None,
            vsize_bytes: None,
            pss_bytes: None,
            fds: None,
            counters,
        }
    }

    #[test]
    fn since_subtracts_every_counter_and_keeps_unreadable_ones_null() {
        let delta = counters(30, 5000).since(&counters(10, 1000));
        assert_eq!(delta.cpu_user_ticks, 20);
        assert_eq!(delta.cpu_system_ticks, 10);
        assert_eq!(delta.minor_faults, 200);
        assert_eq!(delta.major_faults, 0);
        assert_eq!(delta.voluntary_ctxt_switches, Some(20));
        assert_eq!(delta.nonvoluntary_ctxt_switches, None);
        assert_eq!(delta.io.unwrap().wchar, 4000);
        let unreadable = ProcessCounters {
            io: None,
            ..counters(10, 0)
        };
        assert_eq!(counters(30, 5000).since(&unreadable).io, None);
    }

    #[test]
    fn a_process_born_during_the_trace_counts_from_zero() {
        let now = sample(500, counters(30, 5000));
        let base = baseline(None, &now, 400).expect("born after the trace started");
        assert_eq!(now.counters.since(&base), now.counters);
    }

    #[test]
    fn an_older_process_first_seen_is_only_a_baseline() {
        assert_eq!(baseline(None, &sample(300, counters(30, 0)), 400), None);
    }

    #[test]
    fn the_same_process_counts_from_its_previous_look() {
        let previous = Previous {
            pss: None,
            start_ticks: 300,
            counters: counters(10, 0),
        };
        let now = sample(300, counters(30, 0));
        assert_eq!(
            baseline(Some(&previous), &now, 400),
            Some(previous.counters)
        );
        // A pid reused by a process born since: it is a new process.
        let reused = sample(450, counters(3, 0));
        assert_eq!(
            baseline(Some(&previous), &reused, 400),
            Some(ProcessCounters::at_birth())
        );
    }

    #[test]
    fn pss_is_read_every_pss_every_and_carried_between_for_the_same_process_only() {
        let start = Instant::now();
        let mut first = sample(300, counters(1, 0));
        first.pss_bytes = Some(4096);
        assert_eq!(Previous::pss_due(None, start), Pss::Read);
        let previous = Previous {
            start_ticks: 300,
            counters: first.counters,
            pss: carry_pss(None, &mut first, start),
        };
        let soon = start + PSS_EVERY / 2;
        assert_eq!(Previous::pss_due(Some(&previous), soon), Pss::Skip);
        let mut next = sample(300, counters(2, 0));
        assert_eq!(
            carry_pss(Some(&previous), &mut next, soon),
            Some((start, 4096))
        );
        assert_eq!(next.pss_bytes, Some(4096));
        let mut reused_pid = sample(450, counters(1, 0));
        assert_eq!(carry_pss(Some(&previous), &mut reused_pid, soon), None);
        assert_eq!(reused_pid.pss_bytes, None);
        assert_eq!(
            Previous::pss_due(Some(&previous), start + PSS_EVERY),
            Pss::Read
        );
    }

    #[test]
    fn cmdline_is_joined_and_cut() {
        assert_eq!(joined_cmdline(vec![]), None);
        assert_eq!(
            joined_cmdline(vec!["python3".into(), "/usr/bin/nova-api".into()]).as_deref(),
            Some("python3 /usr/bin/nova-api")
        );
        let long = joined_cmdline(vec!["é".repeat(300)]).unwrap();
        assert_eq!(long.chars().count(), CMDLINE_CHARS);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = super::sample(std::process::id(), false, Pss::Read).expect("own /proc entry");
        assert!(me.threads >= 1);
        assert!(me.rss_bytes.unwrap() > 0);
        assert!(me.pss_bytes.unwrap() > 0);
        assert!(me.fds.unwrap() >= 3);
        assert!(me.cmdline.is_some());
    }
}
