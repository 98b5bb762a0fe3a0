//! Finding runs on disk and what their manifests say about them.
//!
//! A run is a directory with a `manifest.json`; where it sits does not matter (runs may be copied
//! into any layout), so host, service and run id come from the manifest (its `partition`), not
//! the path. A run published into a fleet (`scalpels-trace publish`) has its manifest in
//! `FLEET/runs/host=H/service=S/run=R/` and its tables in `FLEET/<table>/host=H/service=S/run=R/`.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use parquet::file::{
    metadata::{ParquetMetaData, ParquetMetaDataReader},
    statistics::Statistics,
};

use crate::{
    fleet::{self, Partition},
    run::manifest::StoredManifest,
};

/// One run directory and the manifest facts the analysis needs.
#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    /// Where the run sits in a fleet; `host`, `service` and `run_id` are its values.
    pub partition: Partition,
    pub host: String,
    pub service: String,
    pub run_id: String,
    /// As the manifest spells it; "unknown" when it has none.
    pub status: String,
    pub started_at: Timestamp,
    /// When the tables start (see `traced_from` in the manifest).
    pub traced_from: Timestamp,
    pub ended_at: Timestamp,
    /// Seconds traced (from `traced_from` to `ended_at`): what "per second" means in a diff.
    pub seconds: f64,
    pub manifest: StoredManifest,
}

/// Every run under `paths`: each path is a run directory, or a tree searched for them.
/// Sorted by (host, service, run id); an error if none is found.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<Run>> {
    let mut found = BTreeMap::new();
    for path in paths {
        let mut dirs = Vec::new();
        collect(path, &mut dirs).with_context(|| format!("searching {}", path.display()))?;
        if dirs.is_empty() {
            bail!(
                "no Scalpels run under {} (a run directory has a manifest.json)",
                path.display()
            );
        }
        let many = dirs.len() > 1;
        for dir in dirs {
            let run = match load(&dir) {
                Ok(run) => run,
                // One damaged run does not hide a tree's others.
                Err(e) if many => {
                    eprintln!(
                        "scalpels-trace: warning: skipping the run in {}: {e:#}",
                        dir.display()
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            found.insert(
                (run.host.clone(), run.service.clone(), run.run_id.clone()),
                run,
            );
        }
    }
    Ok(found.into_values().collect())
}

/// Exactly one run at `path` (a run directory, or a tree holding a single run).
pub fn one(path: &Path) -> Result<Run> {
    let mut runs = discover(&[path.to_owned()])?;
    if runs.len() > 1 {
        let ids: Vec<_> = runs.iter().map(|r| r.dir.display().to_string()).collect();
        bail!(
            "{} holds {} runs, name one of them:\n  {}",
            path.display(),
            runs.len(),
            ids.join("\n  ")
        );
    }
    Ok(runs.remove(0))
}

/// The run directories at or below `path`. Symbolic links are followed (a tree of links to
/// runs is a handy way to group them), each directory once, so a link loop ends.
fn collect(path: &Path, dirs: &mut Vec<PathBuf>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut pending = vec![path.to_owned()];
    while let Some(dir) = pending.pop() {
        let canonical = dir
            .canonicalize()
            .with_context(|| format!("reading {}", dir.display()))?;
        if !seen.insert(canonical) {
            continue;
        }
        if dir.join("manifest.json").is_file() {
            dirs.push(dir);
            continue;
        }
        let entries = fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        let mut children: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        // Reversed onto the stack, so runs are found in name order.
        children.sort_by(|x, y| y.cmp(x));
        pending.extend(children);
    }
    Ok(())
}

fn load(dir: &Path) -> Result<Run> {
    let path = dir.join("manifest.json");
    let manifest = StoredManifest::read(dir)?;
    let partition = Partition::of(&manifest, dir)?;
    let started_at: Timestamp = manifest
        .started_at
        .as_deref()
        .with_context(|| format!("{} has no started_at", path.display()))?
        .parse()
        .with_context(|| format!("{}: started_at", path.display()))?;
    // Runs before `traced_from` existed count from their start (eBPF loading included).
    let traced_from: Timestamp = match &manifest.traced_from {
        Some(t) => t
            .parse()
            .with_context(|| format!("{}: traced_from", path.display()))?,
        None => started_at,
    };
    let ended_at = manifest
        .ended_at
        .as_deref()
        .map(|t| {
            t.parse()
                .with_context(|| format!("{}: ended_at", path.display()))
        })
        .transpose()?;
    let mut run = Run {
        dir: dir.to_owned(),
        host: partition.host.clone(),
        service: partition.service.clone(),
        run_id: partition.run.clone(),
        partition,
        status: manifest
            .status
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), ToString::to_string),
        started_at,
        traced_from,
        ended_at: ended_at.unwrap_or(traced_from),
        seconds: 0.0,
        manifest,
    };
    // A killed run never wrote ended_at: the latest time its tables recorded says how far it
    // got.
    if ended_at.is_none() {
        run.ended_at = last_recorded(&tables(&run)?)?.map_or(traced_from, |t| t.max(traced_from));
    }
    run.seconds =
        ((run.ended_at.as_nanosecond() - traced_from.as_nanosecond()) as f64 / 1e9).max(1e-3);
    Ok(run)
}

/// The latest time recorded in `tables` (an interval's end, an event's time), from the maxima
/// the Parquet footers keep of the `interval_end` and `time` columns. Not the files'
/// modification times, which anything that touches a file moves.
fn last_recorded(tables: &BTreeMap<String, PathBuf>) -> Result<Option<Timestamp>> {
    let mut latest: Option<i64> = None;
    for path in tables.values() {
        // Unreadable files are left to the readers of the tables, which warn about them.
        for metadata in parquet_files(path)?.iter().filter_map(|f| footer(f).ok()) {
            let columns = metadata.file_metadata().schema_descr().columns().to_vec();
            for row_group in metadata.row_groups() {
                for (column, chunk) in columns.iter().zip(row_group.columns()) {
                    if !matches!(column.name(), "interval_end" | "time") {
                        continue;
                    }
                    if let Some(Statistics::Int64(stats)) = chunk.statistics()
                        && let Some(&max) = stats.max_opt()
                    {
                        latest = Some(latest.map_or(max, |l| l.max(max)));
                    }
                }
            }
        }
    }
    latest
        .map(|ns| Timestamp::from_nanosecond(i128::from(ns)).context("recorded time out of range"))
        .transpose()
}

/// The Parquet files of a table: the file itself, or the closed segments of a `.parts`
/// directory.
pub fn parquet_files(table: &Path) -> Result<Vec<PathBuf>> {
    if !table.is_dir() {
        return Ok(vec![table.to_owned()]);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(table)
        .with_context(|| format!("reading {}", table.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_segment(p))
        .collect();
    files.sort();
    Ok(files)
}

/// The footer of the Parquet file `path`: an error if it is not a complete Parquet file.
pub fn footer(path: &Path) -> Result<ParquetMetaData> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))
}

/// A closed segment: readers skip the hidden ones still being written.
fn is_segment(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with(".parquet") && !name.starts_with('.')
}

/// The tables of a run, by name: the finished `<table>.parquet` file, or the `<table>.parts`
/// directory of a run killed before it could merge its segments.
pub fn tables(run: &Run) -> Result<BTreeMap<String, PathBuf>> {
    if let Some(root) = fleet_root(run) {
        return fleet_tables(root, run);
    }
    let mut tables = BTreeMap::new();
    for entry in fs::read_dir(&run.dir).with_context(|| format!("reading {}", run.dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(table) = name.strip_suffix(".parquet") {
            tables.insert(table.to_owned(), path.clone());
        } else if let Some(table) = name.strip_suffix(".parts")
            && has_segments(&path)
        {
            tables.entry(table.to_owned()).or_insert(path.clone());
        }
    }
    Ok(tables)
}

/// The fleet a run was published into, if its manifest sits where a fleet keeps them.
fn fleet_root(run: &Run) -> Option<&Path> {
    let root = run.dir.ancestors().nth(4)?;
    let manifest = root.join(run.partition.manifest());
    (manifest.parent()? == run.dir.as_path()).then_some(root)
}

/// A fleet run's tables: the directories `ROOT/<table>/host=H/service=S/run=R` with segments.
fn fleet_tables(root: &Path, run: &Run) -> Result<BTreeMap<String, PathBuf>> {
    let mut tables = BTreeMap::new();
    for entry in fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let dir = root.join(run.partition.table_dir(&name));
        if name != fleet::RUNS && has_segments(&dir) {
            tables.insert(name, dir);
        }
    }
    Ok(tables)
}

fn has_segments(dir: &Path) -> bool {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| is_segment(&e.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_manifest(dir: &Path, fields: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(
            dir.join("manifest.json"),
            format!(r#"{{"status": "complete", "started_at": "2026-11-25T03:15:00Z", {fields}}}"#),
        )
        .unwrap();
    }

    fn segment(dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("part-00000.parquet"), b"").unwrap();
    }

    #[test]
    fn finds_runs_in_any_layout_and_names_them_from_their_manifests() {
        let root = std::env::temp_dir().join(format!("scalpels-runs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let partition = |h, s, r| {
            format!(
                r#""ended_at": "2026-11-25T03:15:10Z",
                   "partition": {{"host": "{h}", "service": "{s}", "run": "{r}"}}"#
            )
        };
        // A run directory deep in some tree, with a table and a killed table's segments.
        let deep = root.join("copies/deep/r1");
        write_manifest(&deep, &partition("node1", "nova-compute", "r1"));
        fs::write(deep.join("syscalls.parquet"), b"").unwrap();
        segment(&deep.join("proc_stats.parts"));
        fs::create_dir_all(deep.join("empty.parts")).unwrap();
        // A run from before manifests had a partition: placed by host name, service, dir name.
        let legacy = root.join("old/20261125T031500Z-python3");
        write_manifest(
            &legacy,
            r#""host": {"hostname": "node2"}, "target": {"service": null}, "ended_at": null"#,
        );
        // A run published into a fleet.
        let fleet = root.join("fleet");
        let published = fleet.join("runs/host=node3/service=keystone/run=r3");
        write_manifest(&published, &partition("node3", "keystone", "r3"));
        segment(&fleet.join("syscalls/host=node3/service=keystone/run=r3"));
        segment(&fleet.join("syscalls/host=node4/service=keystone/run=r4"));

        let runs = discover(std::slice::from_ref(&root)).unwrap();
        let names: Vec<_> = runs
            .iter()
            .map(|r| (r.host.as_str(), r.service.as_str(), r.run_id.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("node1", "nova-compute", "r1"),
                ("node2", "python3", "20261125T031500Z-python3"),
                ("node3", "keystone", "r3"),
            ]
        );
        assert_eq!(runs[0].seconds, 10.0);
        assert_eq!(
            tables(&runs[0]).unwrap(),
            BTreeMap::from([
                ("proc_stats".to_owned(), deep.join("proc_stats.parts")),
                ("syscalls".to_owned(), deep.join("syscalls.parquet")),
            ])
        );
        assert_eq!(
            tables(&runs[2]).unwrap(),
            BTreeMap::from([(
                "syscalls".to_owned(),
                fleet.join("syscalls/host=node3/service=keystone/run=r3")
            )])
        );
        assert!(one(&root).is_err());
        assert_eq!(one(&root.join("fleet")).unwrap().run_id, "r3");
        assert!(discover(&[root.join("copies/nothing")]).is_err());
        fs::remove_dir_all(&root).unwrap();
    }
}
