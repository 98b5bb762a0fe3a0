//! What the kernel and the loader count from the moment the tracers attach: losses, what could
//! not be parsed, and with `--bpf-stats` the programs' runs and kernel time. The kernel's
//! counters only grow, so a run's share is the difference between two readings: in continuous
//! mode each run's manifest holds what was counted during that run alone, and the runs of a
//! trace add up to the trace.

use std::collections::BTreeMap;

use super::attach::Attached;
use crate::{run::manifest::ProgramCost, tracer::Drops};

/// Each program's runs and kernel time, by program name.
pub(super) type Programs = BTreeMap<&'static str, ProgramCost>;

/// The counts of one tracer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct TracerCounts {
    pub(super) drops: Drops,
    pub(super) unparsed: BTreeMap<String, u64>,
    /// With `--bpf-stats` only.
    pub(super) programs: Programs,
}

/// The counts of every attached tracer, and of the programs they share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts {
    tracers: BTreeMap<&'static str, TracerCounts>,
    /// The system-call hooks', with `--bpf-stats` only.
    pub(super) shared_programs: Programs,
}

impl Attached {
    /// Every count as it stands now, since the tracers were attached.
    pub(super) fn counts(&self) -> Counts {
        let tracers = self
            .tracers
            .iter()
            .map(|t| {
                let counts = TracerCounts {
                    drops: self.drops(t.name()),
                    unparsed: t.unparsed(),
                    programs: self
                        .program_stats
                        .as_ref()
                        .map(|stats| stats.of(&self.ebpf, t.name()))
                        .unwrap_or_default(),
                };
                (t.name(), counts)
            })
            .collect();
        Counts {
            tracers,
            shared_programs: self
                .program_stats
                .as_ref()
                .map(|stats| stats.shared(&self.ebpf))
                .unwrap_or_default(),
        }
    }
}

impl Counts {
    /// The counts of `tracer` (none for a tracer that did not attach).
    pub(super) fn of(&self, tracer: &str) -> TracerCounts {
        self.tracers.get(tracer).cloned().unwrap_or_default()
    }

    /// What was counted after `earlier`, a reading of the same counters before this one.
    pub(super) fn since(&self, earlier: &Counts) -> Counts {
        let tracers = self
            .tracers
            .iter()
            .map(|(&name, now)| {
                let before = earlier.of(name);
                let counts = TracerCounts {
                    drops: since(&now.drops, &before.drops, u64::saturating_sub),
                    unparsed: since(&now.unparsed, &before.unparsed, u64::saturating_sub),
                    programs: since(&now.programs, &before.programs, cost_since),
                };
                (name, counts)
            })
            .collect();
        Counts {
            tracers,
            shared_programs: since(&self.shared_programs, &earlier.shared_programs, cost_since),
        }
    }
}

/// Each of `now`'s counters less what it was in `earlier` (a counter `earlier` lacks was at
/// zero), subtracted with `minus`. Saturating: should a count ever restart from zero, the run
/// gets none rather than a wrapped number.
fn since<K: Ord + Clone, V: Copy + Default>(
    now: &BTreeMap<K, V>,
    earlier: &BTreeMap<K, V>,
    minus: impl Fn(V, V) -> V,
) -> BTreeMap<K, V> {
    now.iter()
        .map(|(key, &value)| {
            let before = earlier.get(key).copied().unwrap_or_default();
            (key.clone(), minus(value, before))
        })
        .collect()
}

fn cost_since(now: ProgramCost, earlier: ProgramCost) -> ProgramCost {
    ProgramCost {
        runs: now.runs.saturating_sub(earlier.runs),
        run_time_ns: now.run_time_ns.saturating_sub(earlier.run_time_ns),
        recursion_misses: now
            .recursion_misses
            .saturating_sub(earlier.recursion_misses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(drops: &[(&'static str, u64)], unparsed: &[(&str, u64)], runs: u64) -> Counts {
        let cost = ProgramCost {
            runs,
            run_time_ns: runs * 100,
            recursion_misses: runs / 10,
        };
        Counts {
            tracers: BTreeMap::from([(
                "syscalls",
                TracerCounts {
                    drops: drops.iter().copied().collect(),
                    unparsed: unparsed.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
                    programs: BTreeMap::from([("prog", cost)]),
                },
            )]),
            shared_programs: BTreeMap::from([("hooks_exit", cost)]),
        }
    }

    #[test]
    fn a_run_holds_what_was_counted_after_the_previous_reading() {
        let earlier = counts(&[("events_dropped", 5), ("stats_map_full", 0)], &[], 10);
        let now = counts(
            &[("events_dropped", 7), ("stats_map_full", 0)],
            &[("mysql_bytes", 40)],
            30,
        );
        assert_eq!(
            now.since(&earlier),
            counts(
                &[("events_dropped", 2), ("stats_map_full", 0)],
                &[("mysql_bytes", 40)],
                20
            )
        );
    }

    #[test]
    fn the_runs_add_up_to_the_whole_trace() {
        let readings = [
            counts(&[("events_dropped", 3)], &[("http_messages", 1)], 10),
            counts(&[("events_dropped", 3)], &[("http_messages", 4)], 25),
            counts(&[("events_dropped", 9)], &[("http_messages", 4)], 40),
        ];
        let mut before = Counts::default();
        let mut dropped = 0;
        let mut messages = 0;
        let mut runs = 0;
        for reading in &readings {
            let run = reading.since(&before);
            let syscalls = run.of("syscalls");
            dropped += syscalls.drops["events_dropped"];
            messages += syscalls.unparsed["http_messages"];
            runs += run.shared_programs["hooks_exit"].runs;
            before = reading.clone();
        }
        assert_eq!((dropped, messages, runs), (9, 4, 40));
    }

    #[test]
    fn a_count_that_went_down_gives_none() {
        let earlier = counts(&[], &[("samples_without_stack", 3)], 0);
        let now = counts(&[], &[("samples_without_stack", 1)], 0);
        assert_eq!(
            now.since(&earlier).of("syscalls").unparsed["samples_without_stack"],
            0
        );
    }
}
