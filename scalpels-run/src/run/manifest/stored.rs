//! A `manifest.json` read back: the part of [`Manifest`](super::Manifest) its readers use
//! (the analysis commands, `publish`), typed with the writer's enums.
//!
//! Every field may be missing, so that the manifests of older runs and hand-made ones load;
//! each reader decides what it cannot do without. Fields it does not know are ignored.

use std::{collections::BTreeMap, fs, path::Path};

use anyhow::{Context as _, Result};
use serde::Deserialize;

use super::{RunStatus, TracerStatus};
use crate::fleet::Partition;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoredManifest {
    /// None in a manifest that has no status.
    pub status: Option<RunStatus>,
    pub end_reason: Option<String>,
    pub host: StoredHost,
    /// None in runs from before manifests had a partition.
    pub partition: Option<Partition>,
    pub target: StoredTarget,
    /// RFC 3339, as written; the readers parse the times they need.
    pub started_at: Option<String>,
    /// None in runs from before it was written.
    pub traced_from: Option<String>,
    /// None until the run ends: a killed run never wrote it.
    pub ended_at: Option<String>,
    pub tracers: Vec<StoredTracer>,
    pub tables: BTreeMap<String, StoredTable>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoredHost {
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoredTarget {
    pub service: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoredTracer {
    pub name: Option<String>,
    pub status: Option<TracerStatus>,
    pub reason: Option<String>,
    pub drops: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StoredTable {
    pub rows_lost: u64,
}

impl StoredManifest {
    /// The manifest of the run directory `run`.
    pub fn read(run: &Path) -> Result<Self> {
        let path = run.join("manifest.json");
        let text = fs::read_to_string(&path)
            .with_context(|| format!("reading {} (is it a run directory?)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{
        super::{
            Host, Manifest, Options, ProgramCost, TableRecord, Target, TargetKind, TracerRecord,
        },
        *,
    };
    use crate::run::dir::Dir;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "scalpels-stored-manifest-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn read(name: &str, json: &str) -> Result<StoredManifest> {
        let dir = scratch(name);
        fs::write(dir.join("manifest.json"), json).unwrap();
        let manifest = StoredManifest::read(&dir);
        fs::remove_dir_all(&dir).unwrap();
        manifest
    }

    #[test]
    fn what_the_writer_writes_reads_back() {
        let dir = scratch("round-trip");
        let manifest = Manifest {
            schema_version: crate::run::SCHEMA_VERSION,
            scalpels_version: "0.0.0",
            run_id: "20261125T031500Z-keystone".into(),
            status: RunStatus::Complete,
            end_reason: Some("SIGINT".into()),
            host: Host {
                hostname: "node-a".into(),
                kernel_release: "6.8.0".into(),
                machine: "x86_64".into(),
            },
            partition: Partition {
                host: "node-a".into(),
                service: "keystone".into(),
                run: "20261125T031500Z-keystone".into(),
            },
            command_line: vec!["scalpels-trace".into()],
            target: Target {
                kind: TargetKind::Service,
                service: Some("keystone".into()),
                resolved_as: None,
                cgroup: None,
                cgroup_id: None,
                command: None,
                pids: vec![42],
            },
            started_at: "2026-11-25T03:15:00Z".into(),
            traced_from: "2026-11-25T03:15:02Z".into(),
            ended_at: Some("2026-11-25T03:15:12Z".into()),
            options: Options {
                interval_ns: 1_000_000_000,
                flush_interval_ns: 5_000_000_000,
                bpf_stats: true,
                tracers: serde_json::Map::new(),
            },
            tracers: vec![
                TracerRecord {
                    name: "syscalls",
                    status: TracerStatus::Attached,
                    reason: None,
                    events: 10,
                    drops: BTreeMap::from([("events_dropped", 3)]),
                    notes: BTreeMap::from([(42, "a note".into())]),
                    unparsed: BTreeMap::new(),
                    programs: BTreeMap::from([("sys_enter", ProgramCost::default())]),
                },
                TracerRecord {
                    name: "python",
                    status: TracerStatus::Unavailable,
                    reason: Some("no BTF".into()),
                    events: 0,
                    drops: BTreeMap::new(),
                    notes: BTreeMap::new(),
                    unparsed: BTreeMap::new(),
                    programs: BTreeMap::new(),
                },
            ],
            shared_programs: BTreeMap::new(),
            tables: BTreeMap::from([(
                "syscalls".into(),
                TableRecord {
                    file: "syscalls.parquet".into(),
                    tracer: "syscalls",
                    rows: 10,
                    rows_lost: 2,
                },
            )]),
            upload: None,
        };
        manifest.write(&Dir::open(&dir).unwrap()).unwrap();

        let stored = StoredManifest::read(&dir).unwrap();
        assert_eq!(stored.status, Some(RunStatus::Complete));
        assert_eq!(stored.end_reason.as_deref(), Some("SIGINT"));
        assert_eq!(stored.host.hostname.as_deref(), Some("node-a"));
        assert_eq!(stored.partition, Some(manifest.partition));
        assert_eq!(stored.target.service.as_deref(), Some("keystone"));
        assert_eq!(stored.started_at.as_deref(), Some("2026-11-25T03:15:00Z"));
        assert_eq!(stored.traced_from.as_deref(), Some("2026-11-25T03:15:02Z"));
        assert_eq!(stored.ended_at.as_deref(), Some("2026-11-25T03:15:12Z"));
        let tracers: Vec<_> = stored
            .tracers
            .iter()
            .map(|t| (t.name.as_deref(), t.status.clone(), t.reason.as_deref()))
            .collect();
        assert_eq!(
            tracers,
            [
                (Some("syscalls"), Some(TracerStatus::Attached), None),
                (
                    Some("python"),
                    Some(TracerStatus::Unavailable),
                    Some("no BTF")
                ),
            ]
        );
        assert_eq!(
            stored.tracers[0].drops,
            BTreeMap::from([("events_dropped".to_owned(), 3)])
        );
        assert_eq!(stored.tables["syscalls"].rows_lost, 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A killed run of an old version: no `traced_from`, `partition`, `ended_at` or tables.
    #[test]
    fn an_old_minimal_manifest_reads_with_what_it_has() {
        let stored = read(
            "old",
            r#"{"status": "running", "started_at": "2026-11-25T03:15:00Z",
                "host": {"hostname": "node2"}, "target": {"service": null}}"#,
        )
        .unwrap();
        assert_eq!(stored.status, Some(RunStatus::Running));
        assert_eq!(stored.host.hostname.as_deref(), Some("node2"));
        assert_eq!(stored.target.service, None);
        assert_eq!(stored.partition, None);
        assert_eq!(stored.traced_from, None);
        assert!(stored.tracers.is_empty() && stored.tables.is_empty());

        let empty = read("empty", "{}").unwrap();
        assert_eq!((empty.status, empty.started_at), (None, None));
    }

    /// A newer version's manifest: states and fields this one does not know.
    #[test]
    fn unknown_states_are_kept_and_unknown_fields_ignored() {
        let stored = read(
            "newer",
            r#"{"status": "paused", "started_at": "2026-11-25T03:15:00Z", "energy": {"j": 3},
                "tracers": [{"name": "gpu", "status": "sleeping", "drops": {}, "joules": 1}],
                "tables": {"gpu": {"file": "gpu.parquet", "rows": 1, "rows_lost": 0,
                                   "codec": "zstd"}}}"#,
        )
        .unwrap();
        assert_eq!(stored.status, Some(RunStatus::Other("paused".into())));
        assert_eq!(stored.status.unwrap().to_string(), "paused");
        assert_eq!(
            stored.tracers[0].status,
            Some(TracerStatus::Other("sleeping".into()))
        );
        assert_eq!(stored.tables["gpu"].rows_lost, 0);
    }

    #[test]
    fn a_manifest_that_is_not_one_is_an_error_naming_its_file() {
        for (name, json) in [
            ("not-json", "{ not json"),
            ("not-an-object", "[1, 2]"),
            ("wrong-type", r#"{"tables": {"t": {"rows_lost": "many"}}}"#),
        ] {
            let e = format!("{:#}", read(name, json).unwrap_err());
            assert!(
                e.contains("parsing") && e.contains(name) && e.contains("manifest.json"),
                "{e}"
            );
        }
        let e = format!(
            "{:#}",
            StoredManifest::read(Path::new("/nonexistent")).unwrap_err()
        );
        assert!(e.contains("/nonexistent/manifest.json"), "{e}");
    }
}
