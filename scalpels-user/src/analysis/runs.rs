//! Finding runs on disk and what their manifests say about them.
//!
//! A run is a directory with a `manifest.json`; where it sits does not matter (a fleet may copy
//! runs into any layout), so host, service and run id come from the manifest, not the path.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use serde_json::Value;

/// One run directory and the manifest facts the analysis needs.
#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    pub host: String,
    pub service: String,
    pub run_id: String,
    pub status: String,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    /// Seconds traced (from `traced_from` to `ended_at`): what "per second" means in a diff.
    pub seconds: f64,
    pub manifest: Value,
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
        for dir in dirs {
            let run = load(&dir)?;
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

fn collect(path: &Path, dirs: &mut Vec<PathBuf>) -> Result<()> {
    if path.join("manifest.json").is_file() {
        dirs.push(path.to_owned());
        return Ok(());
    }
    let entries = fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?;
    let mut children: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    children.sort();
    for child in children {
        collect(&child, dirs)?;
    }
    Ok(())
}

fn load(dir: &Path) -> Result<Run> {
    let path = dir.join("manifest.json");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let text_at = |pointer: &str| manifest.pointer(pointer).and_then(Value::as_str);
    let run_id = text_at("/run_id")
        .with_context(|| format!("{} has no run_id", path.display()))?
        .to_owned();
    let started_at: Timestamp = text_at("/started_at")
        .with_context(|| format!("{} has no started_at", path.display()))?
        .parse()
        .with_context(|| format!("{}: started_at", path.display()))?;
    // A killed run never wrote ended_at: its last flushed segment says how far it got.
    let ended_at = match text_at("/ended_at") {
        Some(t) => t
            .parse()
            .with_context(|| format!("{}: ended_at", path.display()))?,
        None => last_write(dir)?,
    };
    // Runs before `traced_from` existed count from their start (eBPF loading included).
    let traced_from: Timestamp = match text_at("/traced_from") {
        Some(t) => t
            .parse()
            .with_context(|| format!("{}: traced_from", path.display()))?,
        None => started_at,
    };
    let seconds = (ended_at.as_nanosecond() - traced_from.as_nanosecond()) as f64 / 1e9;
    Ok(Run {
        dir: dir.to_owned(),
        host: text_at("/host/hostname").unwrap_or("unknown").to_owned(),
        service: service(&manifest),
        run_id,
        status: text_at("/status").unwrap_or("unknown").to_owned(),
        started_at,
        ended_at,
        seconds: seconds.max(1e-3),
        manifest,
    })
}

/// The service a run traced: its `--service` name, else the command's program name, else the
/// first process id (the same label the run id carries).
fn service(manifest: &Value) -> String {
    if let Some(name) = manifest.pointer("/target/service").and_then(Value::as_str) {
        return name.to_owned();
    }
    if let Some(program) = manifest
        .pointer("/target/command/0")
        .and_then(Value::as_str)
    {
        return program.rsplit('/').next().unwrap_or(program).to_owned();
    }
    match manifest.pointer("/target/pids/0").and_then(Value::as_u64) {
        Some(pid) => format!("pid-{pid}"),
        None => "unknown".to_owned(),
    }
}

fn last_write(dir: &Path) -> Result<Timestamp> {
    fn newest(path: &Path, latest: &mut SystemTime) {
        for entry in fs::read_dir(path).into_iter().flatten().flatten() {
            if let Ok(meta) = entry.metadata() {
                if meta.is_dir() {
                    newest(&entry.path(), latest);
                } else if let Ok(modified) = meta.modified() {
                    *latest = (*latest).max(modified);
                }
            }
        }
    }
    let mut latest = SystemTime::UNIX_EPOCH;
    newest(dir, &mut latest);
    Timestamp::try_from(latest).context("file modification time out of range")
}

/// The tables of a run, by name: the finished `<table>.parquet` file, or the `<table>.parts`
/// directory of a run killed before it could merge its segments.
pub fn tables(run: &Run) -> Result<BTreeMap<String, PathBuf>> {
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

fn has_segments(dir: &Path) -> bool {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_run(dir: &Path, host: &str, manifest_target: &str, ended: bool) {
        fs::create_dir_all(dir).unwrap();
        let ended_at = if ended {
            r#""2026-11-25T03:15:10Z""#
        } else {
            "null"
        };
        fs::write(
            dir.join("manifest.json"),
            format!(
                r#"{{"run_id": "{}", "status": "complete", "host": {{"hostname": "{host}"}},
                "target": {manifest_target}, "started_at": "2026-11-25T03:15:00Z",
                "ended_at": {ended_at}}}"#,
                dir.file_name().unwrap().to_str().unwrap()
            ),
        )
        .unwrap();
    }

    #[test]
    fn finds_runs_anywhere_in_a_tree_and_names_them_from_their_manifests() {
        let root = std::env::temp_dir().join(format!("scalpels-runs-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        write_run(
            &root.join("a/deep/r1"),
            "node1",
            r#"{"service": "nova-compute"}"#,
            true,
        );
        write_run(
            &root.join("b/r2"),
            "node2",
            r#"{"command": ["/usr/bin/python3", "app.py"]}"#,
            true,
        );
        write_run(&root.join("r3"), "node1", r#"{"pids": [42]}"#, false);
        fs::create_dir_all(root.join("r3/syscalls.parts")).unwrap();
        fs::write(root.join("r3/syscalls.parts/part-00000.parquet"), b"").unwrap();
        fs::create_dir_all(root.join("r3/empty.parts")).unwrap();

        let runs = discover(&[root.clone()]).unwrap();
        let names: Vec<_> = runs
            .iter()
            .map(|r| (r.host.as_str(), r.service.as_str(), r.run_id.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("node1", "nova-compute", "r1"),
                ("node1", "pid-42", "r3"),
                ("node2", "python3", "r2")
            ]
        );
        assert_eq!(runs[0].seconds, 10.0);
        let killed = &runs[1];
        assert!(killed.ended_at > killed.started_at);
        assert_eq!(
            tables(killed).unwrap().into_keys().collect::<Vec<_>>(),
            ["syscalls"]
        );
        assert!(one(&root).is_err());
        assert_eq!(one(&root.join("b")).unwrap().run_id, "r2");
        assert!(discover(&[root.join("a/deep/r1/nothing")]).is_err());
        fs::remove_dir_all(&root).unwrap();
    }
}
