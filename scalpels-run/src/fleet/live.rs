//! A run traced straight to an object store (`--out s3://...`): it is written in a local
//! staging directory as any run is, and each closed segment and the manifest are uploaded as
//! soon as they are complete, so a crash loses no more than it would of a local run. The
//! staging copy is removed once everything is up, and kept when anything failed.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};
use serde::Serialize;

use super::{
    Partition,
    destination::{Destination, Location},
    uploader::{Tally, Uploader},
};
use crate::run::table::TableWriter;

pub struct LiveUpload {
    location: Location,
    partition: Partition,
    uploader: Uploader,
    /// Segments already queued, per table.
    queued: HashMap<&'static str, usize>,
}

/// The `upload` object of the manifest.
#[derive(Debug, Serialize)]
pub struct UploadRecord {
    pub to: String,
    #[serde(flatten)]
    pub tally: Tally,
}

/// Whether a run's place in the store is test-written before the run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteCheck {
    /// A store that refuses the test write fails the start: a run traced to a store it cannot
    /// write to is refused before anything is loaded.
    Probe,
    /// No test write: a store that refuses writes fails each file's put, which is counted and
    /// its file kept. For a run that follows another in continuous mode, whose tracing must
    /// not stop because the store is down at the rotation.
    Skip,
}

impl LiveUpload {
    /// Connects, and with `WriteCheck::Probe` checks that the run's place in the store takes
    /// writes.
    pub fn start(location: &Location, partition: Partition, check: WriteCheck) -> Result<Self> {
        let probe_key = (check == WriteCheck::Probe).then(|| partition.probe());
        let uploader = Uploader::start(Destination::open(location)?, probe_key)?;
        Ok(Self {
            location: location.clone(),
            partition,
            uploader,
            queued: HashMap::new(),
        })
    }

    /// Queues the segments `table` closed since the last call.
    pub fn closed_segments(&mut self, table: &TableWriter) {
        self.segments(table.name(), table.closed_segments());
    }

    /// Queues the segments of `table` (all it closed, in order) not queued yet.
    pub fn segments(&mut self, table: &'static str, segments: &[PathBuf]) {
        let queued = self.queued.entry(table).or_default();
        for segment in &segments[*queued..] {
            let file = segment
                .file_name()
                .expect("segments are files")
                .to_string_lossy();
            self.uploader
                .upload(segment.clone(), self.partition.table_file(table, &file));
        }
        *queued = segments.len();
    }

    pub fn manifest(&self, run_dir: &Path) {
        self.uploader
            .upload(run_dir.join("manifest.json"), self.partition.manifest());
    }

    /// What the uploads queued so far came to, once they are done (for the manifest).
    pub fn record(&self) -> Result<UploadRecord> {
        Ok(UploadRecord {
            to: self.location.to_string(),
            tally: self.uploader.tally()?,
        })
    }

    /// Waits for the last uploads. With all of them done the staging copy goes; otherwise it
    /// stays, and the error says how to upload it again.
    pub fn finish(self, run_dir: &Path) -> Result<Tally> {
        let tally = self.uploader.finish()?;
        if tally.failed > 0 {
            bail!(
                "{} of {} uploads to {} failed (errors above); the run is kept in {}: \
                 `scalpels-trace publish {} --to {}` uploads it again",
                tally.failed,
                tally.failed + tally.objects,
                self.location,
                run_dir.display(),
                run_dir.display(),
                self.location
            );
        }
        std::fs::remove_dir_all(run_dir).map_err(|e| {
            anyhow::anyhow!(
                "every file is uploaded, but the staging copy {} could not be removed: {e}",
                run_dir.display()
            )
        })?;
        Ok(tally)
    }
}
