//! The fleet layout: runs of many hosts in one place (a shared directory or an object store),
//! one Hive-partitioned dataset per table, so that DuckDB, Spark and `pyarrow.dataset` read
//! all runs of a table as one:
//!
//! ```text
//! FLEET/<table>/host=H/service=S/run=R/part-NNNNN.parquet
//! FLEET/runs/host=H/service=S/run=R/manifest.json
//! ```
//!
//! Table first, because the tables have different schemas: a dataset is a directory of files
//! with one schema, and every reader discovers `key=value` directories below its root without
//! being told file names. The manifests sit apart, where no table reader looks.

pub mod destination;
pub mod live;
pub mod publish;
pub mod uploader;

use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::run::{manifest::StoredManifest, run_dir::file_safe};

/// The directory of the manifests, beside the tables.
pub const RUNS: &str = "runs";

/// The columns a fleet adds to every table, which no table may have itself (a reader would
/// either refuse the dataset or hide the table's column behind the partition's).
pub const PARTITION_COLUMNS: [&str; 3] = ["host", "service", "run"];

/// Where a run sits in the fleet: the values of its `host=`, `service=` and `run=` directories.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub host: String,
    pub service: String,
    pub run: String,
}

impl Partition {
    fn directories(&self) -> String {
        format!(
            "host={}/service={}/run={}",
            self.host, self.service, self.run
        )
    }

    /// The key of one file of `table`, relative to the fleet's root.
    pub fn table_file(&self, table: &str, file: &str) -> String {
        format!("{table}/{}/{file}", self.directories())
    }

    /// The directory (key prefix) holding this run's files of `table`.
    pub fn table_dir(&self, table: &str) -> String {
        format!("{table}/{}", self.directories())
    }

    pub fn manifest(&self) -> String {
        format!("{RUNS}/{}/manifest.json", self.directories())
    }

    /// A hidden file beside the manifest, written and removed to check that the destination
    /// takes writes before anything else is done.
    pub fn probe(&self) -> String {
        format!("{RUNS}/{}/.write-test", self.directories())
    }

    /// The partition the manifest of the run directory `run` names.
    pub fn of_run(run: &Path) -> Result<Self> {
        Self::of(&StoredManifest::read(run)?, run)
    }

    /// The partition `manifest`, of the run directory `run`, names. Runs written before
    /// manifests had a `partition` are placed by their host name, service and run id.
    pub fn of(manifest: &StoredManifest, run: &Path) -> Result<Self> {
        if let Some(partition) = &manifest.partition {
            return Ok(partition.clone());
        }
        let run_id = run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("a run directory has a name")?;
        let service = manifest
            .target
            .service
            .clone()
            .or_else(|| run_id.split_once('-').map(|(_, label)| label.to_owned()))
            .unwrap_or_else(|| run_id.clone());
        Ok(Self {
            host: file_safe(manifest.host.hostname.as_deref().unwrap_or("unknown")),
            service: file_safe(&service),
            run: file_safe(&run_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_put_the_table_first_and_the_partitions_in_hive_form() {
        let p = Partition {
            host: "node-a".into(),
            service: "nova-compute".into(),
            run: "20261125T031500Z-nova-compute".into(),
        };
        assert_eq!(
            p.table_file("syscalls", "part-00000.parquet"),
            "syscalls/host=node-a/service=nova-compute/run=20261125T031500Z-nova-compute/part-00000.parquet"
        );
        assert_eq!(
            p.manifest(),
            "runs/host=node-a/service=nova-compute/run=20261125T031500Z-nova-compute/manifest.json"
        );
    }

    #[test]
    fn runs_without_a_partition_are_placed_by_their_manifest() {
        let dir = std::env::temp_dir().join(format!(
            "scalpels-partition-{}/20261125T031500Z-python3",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("manifest.json"),
            r#"{"host": {"hostname": "node b"}, "target": {"service": null}}"#,
        )
        .unwrap();
        let p = Partition::of_run(&dir).unwrap();
        assert_eq!(
            (p.host.as_str(), p.service.as_str(), p.run.as_str()),
            ("node_b", "python3", "20261125T031500Z-python3")
        );
        std::fs::write(
            dir.join("manifest.json"),
            r#"{"partition": {"host": "h", "service": "s", "run": "r"}}"#,
        )
        .unwrap();
        assert_eq!(Partition::of_run(&dir).unwrap().run, "r");
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }
}
