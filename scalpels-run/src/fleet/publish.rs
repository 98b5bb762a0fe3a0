//! `scalpels-trace publish RUN... --to DIR|s3://bucket/prefix`: copies run directories into
//! the fleet layout. A finished table becomes `part-00000.parquet`; a killed run's segments
//! keep their names, as a run traced straight to an object store uploads them. Publishing a
//! run again replaces what was published of it before.

use std::{
    collections::BTreeSet,
    fs::File,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use parquet::file::metadata::ParquetMetaDataReader;

use super::{
    PARTITION_COLUMNS, Partition,
    destination::{Destination, Location},
    uploader::{Tally, Uploader},
};

/// A table of a run and its files, in order.
struct Table {
    name: String,
    files: Vec<(PathBuf, String)>,
}

/// The tables of a run directory: `<table>.parquet`, else the closed segments in
/// `<table>.parts/` (a run that was killed, or is still going).
fn tables(run: &Path) -> Result<Vec<Table>> {
    let entries =
        std::fs::read_dir(run).with_context(|| format!("reading the run {}", run.display()))?;
    let mut names = BTreeSet::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(table) = name
            .strip_suffix(".parquet")
            .or_else(|| name.strip_suffix(".parts"))
        {
            names.insert(table.to_owned());
        }
    }
    let mut tables = Vec::new();
    for name in names {
        let merged = run.join(format!("{name}.parquet"));
        let files = if merged.is_file() {
            vec![(merged, "part-00000.parquet".to_owned())]
        } else {
            let mut parts: Vec<(PathBuf, String)> =
                std::fs::read_dir(run.join(format!("{name}.parts")))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
                    .filter(|(_, file)| file.ends_with(".parquet") && !file.starts_with('.'))
                    .collect();
            parts.sort();
            parts
        };
        if !files.is_empty() {
            tables.push(Table { name, files });
        }
    }
    Ok(tables)
}

/// Warns about a table column that a fleet's partition column would clash with.
fn warn_about_partition_columns(table: &Table) {
    let Some((path, _)) = table.files.first() else {
        return;
    };
    let Ok(metadata) =
        File::open(path).map(|file| ParquetMetaDataReader::new().parse_and_finish(&file))
    else {
        return;
    };
    let Ok(metadata) = metadata else { return };
    for field in metadata
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
    {
        if PARTITION_COLUMNS.contains(&field.name()) {
            eprintln!(
                "scalpels-trace: warning: table {} has a column {:?}, which the fleet's partition \
                 column of that name hides (DuckDB) or conflicts with (pyarrow)",
                table.name,
                field.name()
            );
        }
    }
}

/// Publishes each run; fails if any file could not be put (the others still are).
pub fn publish(runs: &[PathBuf], to: &Location) -> Result<()> {
    let destination = Destination::open(to)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut failed = 0;
    for run in runs {
        let partition = Partition::of_run(run)?;
        let tables = tables(run)?;
        if tables.is_empty() {
            bail!("{} has no tables to publish", run.display());
        }
        let uploader = Uploader::start(destination.clone(), Some(partition.probe()))?;
        let mut published = BTreeSet::new();
        for table in &tables {
            warn_about_partition_columns(table);
            for (path, file) in &table.files {
                let key = partition.table_file(&table.name, file);
                uploader.upload(path.clone(), key.clone());
                published.insert(key);
            }
        }
        // The manifest goes last, once the tables it describes are all there.
        if uploader.tally()?.failed == 0 {
            for table in &tables {
                let earlier =
                    runtime.block_on(destination.list(&partition.table_dir(&table.name)))?;
                for key in earlier {
                    let hidden = key.rsplit('/').next().is_some_and(|f| f.starts_with('.'));
                    if !hidden && !published.contains(&key) {
                        runtime.block_on(destination.delete(&key))?;
                    }
                }
            }
            uploader.upload(run.join("manifest.json"), partition.manifest());
        }
        let Tally {
            objects,
            bytes,
            failed: run_failed,
            ..
        } = uploader.finish()?;
        println!(
            "published {} to {} as host={} service={} run={}: {objects} files, {bytes} bytes{}",
            run.display(),
            to,
            partition.host,
            partition.service,
            partition.run,
            if run_failed > 0 {
                format!(", {run_failed} failed (manifest not published)")
            } else {
                String::new()
            }
        );
        failed += run_failed;
    }
    if failed > 0 {
        bail!(
            "{failed} files could not be published (errors above); publishing again retries them"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(run: &Path) -> Vec<(String, Vec<String>)> {
        tables(run)
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.files.into_iter().map(|(_, f)| f).collect()))
            .collect()
    }

    #[test]
    fn finished_tables_and_segments_of_killed_runs_are_both_published() {
        let run = std::env::temp_dir().join(format!("scalpels-publish-{}", std::process::id()));
        let parts = run.join("syscalls.parts");
        std::fs::create_dir_all(&parts).unwrap();
        for file in [
            "part-00001.parquet",
            "part-00000.parquet",
            ".part-00002.parquet.partial",
        ] {
            std::fs::write(parts.join(file), b"").unwrap();
        }
        for file in ["proc_stats.parquet", "manifest.json", "python-on-cpu.svg"] {
            std::fs::write(run.join(file), b"").unwrap();
        }
        assert_eq!(
            names(&run),
            [
                (
                    "proc_stats".to_owned(),
                    vec!["part-00000.parquet".to_owned()]
                ),
                (
                    "syscalls".to_owned(),
                    vec![
                        "part-00000.parquet".to_owned(),
                        "part-00001.parquet".to_owned()
                    ]
                ),
            ]
        );
        std::fs::remove_dir_all(&run).unwrap();
    }
}
