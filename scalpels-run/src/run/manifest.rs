//! `manifest.json`: what a run traced, when, with which tracers, and what was lost.
//!
//! Written when the run starts (status "running") and rewritten when it ends, so even a killed
//! run says what it was.

mod stored;

use std::{collections::BTreeMap, fmt, fs, io::Write as _};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

pub use stored::{StoredHost, StoredManifest, StoredTable, StoredTarget, StoredTracer};

use super::dir::Dir;

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub scalpels_version: &'static str,
    pub run_id: String,
    /// Running until the run ends; failed: `end_reason` says why.
    pub status: RunStatus,
    /// Why the run ended: "duration", "SIGINT", "SIGTERM", "targets exited", "rotated"
    /// (closed for the next run, `--rotate`).
    pub end_reason: Option<String>,
    pub host: Host,
    /// Where the run goes in a fleet of runs (see `scalpels-trace publish`).
    pub partition: crate::fleet::Partition,
    pub command_line: Vec<String>,
    pub target: Target,
    /// RFC 3339, UTC, nanoseconds.
    pub started_at: String,
    /// When the tracers were attached and the targets set (after loading the eBPF programs,
    /// which can take seconds): the start of what was traced, and what a run's "per second"
    /// means to `diff`.
    pub traced_from: String,
    pub ended_at: Option<String>,
    pub options: Options,
    pub tracers: Vec<TracerRecord>,
    /// With `--bpf-stats`: the runs and kernel time of the programs several tracers share
    /// (the system-call hooks, which run the syscalls, files, protocols and python tracers'
    /// work on system calls).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub shared_programs: BTreeMap<&'static str, ProgramCost>,
    pub tables: BTreeMap<String, TableRecord>,
    /// With `--out s3://...`: what was uploaded before the manifest itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<crate::fleet::live::UploadRecord>,
}

/// What became of a run: written `running` at its start, so that a killed run says so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Complete,
    Failed,
    /// Read back only: a status this version does not know (a newer one's), kept as written
    /// so that the run still loads and says what it was.
    #[serde(untagged)]
    Other(String),
}

/// The status as the manifest spells it, for the analysis commands' output.
impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Other(status) => status,
        })
    }
}

/// What the run traced: `--service`, `--pid` or `-- COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Service,
    Pids,
    Command,
}

/// How a `--service` name was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ServiceFoundBy {
    /// A systemd unit's cgroup: the kernel filters by cgroup id.
    #[serde(rename = "systemd unit cgroup")]
    SystemdUnitCgroup,
    /// Processes whose name or command line matches: the kernel filters by process id.
    #[serde(rename = "process name")]
    ProcessName,
}

/// Whether a tracer asked for ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracerStatus {
    Attached,
    Unavailable,
    /// Read back only: a status this version does not know (a newer one's).
    #[serde(untagged)]
    Other(String),
}

#[derive(Debug, Serialize)]
pub struct Host {
    pub hostname: String,
    pub kernel_release: String,
    pub machine: String,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub kind: TargetKind,
    pub service: Option<String>,
    /// How a service was found.
    pub resolved_as: Option<ServiceFoundBy>,
    pub cgroup: Option<String>,
    pub cgroup_id: Option<u64>,
    pub command: Option<Vec<String>>,
    /// Every process traced during the run (followed children included).
    pub pids: Vec<u32>,
}

/// The options of the run: those of every tracer (each tracer's `clap::Args`, serialized
/// whole, so a new option is recorded without a line here), whether its tracer ran or not.
#[derive(Debug, Serialize)]
pub struct Options {
    pub interval_ns: u64,
    pub flush_interval_ns: u64,
    pub bpf_stats: bool,
    #[serde(flatten)]
    pub tracers: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct TracerRecord {
    pub name: &'static str,
    /// Unavailable: `reason` says why.
    pub status: TracerStatus,
    pub reason: Option<String>,
    /// Records the tracer produced (rows of its event tables and interval tables).
    pub events: u64,
    /// Loss counters from the kernel, by name (see docs/losses_and_errors.md).
    pub drops: BTreeMap<&'static str, u64>,
    /// What the tracer found worth saying about the targets (e.g. an interpreter it cannot
    /// read), by process id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<u32, String>,
    /// What the loader side could not use, by name (e.g. bytes a protocol parser could not
    /// decode).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unparsed: BTreeMap<String, u64>,
    /// With `--bpf-stats`: each of its eBPF programs' runs and kernel time.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub programs: BTreeMap<&'static str, ProgramCost>,
}

#[derive(Debug, Serialize)]
pub struct TableRecord {
    pub file: String,
    pub tracer: &'static str,
    /// Rows on disk.
    pub rows: u64,
    /// Rows a write error (a full disk) kept off the disk.
    pub rows_lost: u64,
}

impl Manifest {
    /// Writes `manifest.json` atomically (temporary file, then rename). On a full disk the
    /// room the run set aside is given back and the write tried again.
    pub fn write(&self, run_dir: &Dir) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("serializing the manifest")?;
        let partial = "manifest.json.partial";
        let write = || {
            run_dir.write_then_rename(partial, "manifest.json", |mut file| {
                file.write_all(&json)
                    .with_context(|| format!("writing {}", run_dir.path().join(partial).display()))
            })
        };
        write().or_else(|e| {
            let full = e.chain().any(|cause| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
            });
            if !full {
                return Err(e);
            }
            super::release_room(run_dir);
            write()
        })
    }
}

impl Host {
    pub fn current() -> Self {
        let read = |path: &str| {
            fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            hostname: read("/proc/sys/kernel/hostname"),
            kernel_release: read("/proc/sys/kernel/osrelease"),
            machine: std::env::consts::ARCH.to_owned(),
        }
    }
}

/// One program's runs and kernel time since it was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProgramCost {
    pub runs: u64,
    pub run_time_ns: u64,
    /// Runs the kernel skipped because the program was already running on that CPU (an event
    /// the program never saw).
    pub recursion_misses: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: impl Serialize) -> String {
        serde_json::to_string(&value).unwrap()
    }

    /// The manifest's states are enums in the code and the strings readers match on in JSON.
    #[test]
    fn states_are_written_as_the_documented_strings() {
        for status in [RunStatus::Running, RunStatus::Complete, RunStatus::Failed] {
            assert_eq!(json(&status), format!("\"{status}\""));
        }
        assert_eq!(json(RunStatus::Running), "\"running\"");
        assert_eq!(json(RunStatus::Complete), "\"complete\"");
        assert_eq!(json(RunStatus::Failed), "\"failed\"");
        assert_eq!(json(TargetKind::Pids), "\"pids\"");
        assert_eq!(json(TargetKind::Command), "\"command\"");
        assert_eq!(json(TargetKind::Service), "\"service\"");
        assert_eq!(
            json(ServiceFoundBy::SystemdUnitCgroup),
            "\"systemd unit cgroup\""
        );
        assert_eq!(json(ServiceFoundBy::ProcessName), "\"process name\"");
        assert_eq!(json(TracerStatus::Attached), "\"attached\"");
        assert_eq!(json(TracerStatus::Unavailable), "\"unavailable\"");
    }
}
