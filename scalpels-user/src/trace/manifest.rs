//! The run's manifest as it stands: written once tracing starts (running) and again at the
//! end (complete, or failed).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use tracers::catalogue;

use super::{
    Session,
    attach::Attached,
    counts::{Counts, TracerCounts},
};
use crate::{
    run::{
        SCHEMA_VERSION,
        manifest::{self, RunStatus, TargetKind, TracerStatus},
    },
    target::{ServiceMatch, TargetSpec},
};

fn rfc3339(utc_ns: i64) -> String {
    Timestamp::from_nanosecond(i128::from(utc_ns))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl Session<'_> {
    /// The manifest with the targets in `pids_seen`, and of `counted` (a reading of the counts
    /// since the tracers attached) what was counted during this run; `end` is why and when the
    /// run ended, if it has.
    pub(super) fn manifest(
        &self,
        attached: &Attached,
        pids_seen: &BTreeSet<u32>,
        counted: &Counts,
        end: Option<(&str, i64)>,
    ) -> manifest::Manifest {
        let counted = counted.since(&self.counted_before);
        manifest::Manifest {
            schema_version: SCHEMA_VERSION,
            scalpels_version: env!("CARGO_PKG_VERSION"),
            run_id: self.run_id.clone(),
            status: if end.is_some() {
                RunStatus::Complete
            } else {
                RunStatus::Running
            },
            end_reason: end.map(|(reason, _)| reason.to_owned()),
            host: manifest::Host::current(),
            partition: self.partition.clone(),
            // A `-- COMMAND` may carry secrets, as the command lines of proc_stats do.
            command_line: crate::proc::cmdline::stored(
                std::env::args().collect(),
                self.cli.options.proc.keep_cmdline,
            ),
            target: self.target_record(pids_seen),
            started_at: rfc3339(self.started_ns),
            traced_from: rfc3339(self.traced_ns),
            ended_at: end.map(|(_, at)| rfc3339(at)),
            options: manifest::Options {
                interval_ns: self.cli.interval.as_nanos() as u64,
                flush_interval_ns: self.cli.flush_interval.as_nanos() as u64,
                bpf_stats: self.cli.bpf_stats,
                tracers: self.cli.options.to_manifest(),
            },
            tracers: tracer_records(attached, &counted),
            shared_programs: counted.shared_programs,
            tables: table_records(attached),
            upload: None,
        }
    }

    /// What was traced: the kind of target, the service and its cgroup, the command, and
    /// every pid in `pids_seen`.
    fn target_record(&self, pids_seen: &BTreeSet<u32>) -> manifest::Target {
        let (kind, cgroup) = match (&self.spec, &self.service) {
            (TargetSpec::Service(_), Some(ServiceMatch::Cgroup(dir))) => {
                (TargetKind::Service, Some(dir.clone()))
            }
            (TargetSpec::Service(_), _) => (TargetKind::Service, None),
            (TargetSpec::Pids(_), _) => (TargetKind::Pids, None),
            (TargetSpec::Command(_), _) => (TargetKind::Command, None),
        };
        manifest::Target {
            kind,
            service: self.cli.service.clone(),
            resolved_as: self.service.as_ref().map(ServiceMatch::found_by),
            cgroup_id: cgroup.as_ref().and_then(|d| {
                std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(d).ok()?).into()
            }),
            cgroup: cgroup.map(|d| d.display().to_string()),
            command: matches!(self.spec, TargetSpec::Command(_)).then(|| self.cli.command.clone()),
            pids: pids_seen.iter().copied().collect(),
        }
    }
}

/// Each attached tracer with its `counted` counts, then each unavailable one with its reason.
fn tracer_records(attached: &Attached, counted: &Counts) -> Vec<manifest::TracerRecord> {
    let mut records: Vec<manifest::TracerRecord> = attached
        .tracers
        .iter()
        .map(|t| {
            let TracerCounts {
                drops,
                unparsed,
                programs,
            } = counted.of(t.name());
            manifest::TracerRecord {
                name: t.name(),
                status: TracerStatus::Attached,
                reason: None,
                events: t.events(),
                drops,
                notes: t.notes(),
                unparsed,
                programs,
            }
        })
        .collect();
    records.extend(attached.unavailable.iter().map(|u| manifest::TracerRecord {
        name: u.name,
        status: TracerStatus::Unavailable,
        reason: Some(u.reason.clone()),
        events: 0,
        drops: BTreeMap::new(),
        notes: BTreeMap::new(),
        unparsed: BTreeMap::new(),
        programs: BTreeMap::new(),
    }));
    records
}

/// The tables of the attached tracers, by name; their rows are counted once they are closed.
fn table_records(attached: &Attached) -> BTreeMap<String, manifest::TableRecord> {
    let mut tables = BTreeMap::new();
    for t in &attached.tracers {
        let info = catalogue::find(t.name()).expect("attached tracers are in the catalogue");
        for table in info.tables {
            tables.insert(
                table.to_string(),
                manifest::TableRecord {
                    file: format!("{table}.parquet"),
                    tracer: info.name,
                    rows: 0,
                    rows_lost: 0,
                },
            );
        }
    }
    tables
}
