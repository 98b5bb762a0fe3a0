//! Reading a run's tables back (for the analysis commands): the finished `<table>.parquet`, or
//! the segments of a run that was killed before it could merge them.

use std::{fs::File, path::Path};

use anyhow::{Context as _, Result, bail};
use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub fn table(run: &Path, name: &str) -> Result<Vec<RecordBatch>> {
    let merged = run.join(format!("{name}.parquet"));
    let files = if merged.is_file() {
        vec![merged]
    } else {
        let parts = run.join(format!("{name}.parts"));
        let Ok(entries) = std::fs::read_dir(&parts) else {
            bail!(
                "{} has no table {name} (is it a Scalpels run directory?)",
                run.display()
            );
        };
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        files.sort();
        files
    };
    let mut batches = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(
            File::open(&file).with_context(|| format!("opening {}", file.display()))?,
        )
        .and_then(|b| b.build())
        .with_context(|| format!("reading {}", file.display()))?;
        for batch in reader {
            batches.push(batch.with_context(|| format!("reading {}", file.display()))?);
        }
    }
    Ok(batches)
}
