//! `--keep-runs` and `--keep-bytes`: the closed runs of a service kept under an output
//! directory in continuous mode (`--rotate`), the oldest removed first.
//!
//! Only a directory whose manifest says it is a run of this service, and that it ended
//! (complete or failed), is ever removed: the open run, a run of another service, a killed
//! run (still `running`) and anything that is not a run are left alone.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use jiff::Timestamp;

use super::manifest::{RunStatus, StoredManifest};

/// How many closed runs, and how many bytes of them, to keep; `None`: no limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub runs: Option<usize>,
    pub bytes: Option<u64>,
}

/// A closed run of the service found under the output directory.
struct ClosedRun {
    path: PathBuf,
    started: Timestamp,
    bytes: u64,
}

/// Removes the oldest closed runs of `service` (the partition's service name) under `out`
/// beyond `limits`; the runs removed, oldest first.
pub fn prune(out: &Path, service: &str, limits: Limits) -> Result<Vec<PathBuf>> {
    let mut runs = closed_runs(out, service)?;
    // Newest first: those kept are counted first.
    runs.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| b.path.cmp(&a.path)));
    let mut kept_bytes = 0u64;
    let mut removed = Vec::new();
    for (kept, run) in runs.into_iter().enumerate() {
        kept_bytes = kept_bytes.saturating_add(run.bytes);
        let too_many = limits.runs.is_some_and(|max| kept >= max);
        let too_big = limits.bytes.is_some_and(|max| kept_bytes > max);
        if too_many || too_big {
            fs::remove_dir_all(&run.path)
                .with_context(|| format!("removing the old run {}", run.path.display()))?;
            removed.push(run.path);
        }
    }
    removed.reverse();
    Ok(removed)
}

fn closed_runs(out: &Path, service: &str) -> Result<Vec<ClosedRun>> {
    let mut runs = Vec::new();
    let entries = fs::read_dir(out).with_context(|| format!("listing {}", out.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", out.display()))?;
        // Not followed: a link to a directory is not one of ours.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Ok(manifest) = StoredManifest::read(&path) else {
            continue;
        };
        let ours = manifest
            .partition
            .as_ref()
            .is_some_and(|p| p.service == service);
        let closed = matches!(
            manifest.status,
            Some(RunStatus::Complete | RunStatus::Failed)
        );
        let started = manifest.started_at.as_deref().map(str::parse::<Timestamp>);
        if let (true, true, Some(Ok(started))) = (ours, closed, started) {
            runs.push(ClosedRun {
                bytes: size(&path),
                path,
                started,
            });
        }
    }
    Ok(runs)
}

/// The bytes of the files of a run directory (tables, segments, manifest).
fn size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => size(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scalpels-retention-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A run directory with a manifest and `bytes` of table.
    fn run(out: &Path, name: &str, service: &str, status: &str, second: u32, bytes: usize) {
        let dir = out.join(name);
        fs::create_dir(&dir).unwrap();
        let manifest = format!(
            r#"{{"status":"{status}","partition":{{"host":"h","service":"{service}","run":"{name}"}},
               "started_at":"2026-01-01T00:00:{second:02}.5Z"}}"#
        );
        fs::write(dir.join("manifest.json"), manifest).unwrap();
        fs::write(dir.join("t.parquet"), vec![0u8; bytes]).unwrap();
    }

    fn left(out: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn only_the_oldest_closed_runs_of_the_service_go() {
        let out = scratch();
        run(&out, "a", "svc", "complete", 1, 10);
        run(&out, "b", "svc", "failed", 2, 10);
        run(&out, "c", "svc", "complete", 3, 10);
        run(&out, "d", "svc", "complete", 4, 10);
        run(&out, "open", "svc", "running", 5, 10);
        run(&out, "other", "other-svc", "complete", 0, 10);
        fs::create_dir(out.join("not-a-run")).unwrap();

        let limits = Limits {
            runs: Some(3),
            bytes: None,
        };
        assert_eq!(prune(&out, "svc", limits).unwrap(), [out.join("a")]);
        assert_eq!(left(&out), ["b", "c", "d", "not-a-run", "open", "other"]);

        // Two runs' tables and manifests fit in 2 × 10 bytes and two manifests, not three.
        let two_runs = 2 * (10 + fs::metadata(out.join("d/manifest.json")).unwrap().len());
        let limits = Limits {
            runs: None,
            bytes: Some(two_runs),
        };
        assert_eq!(prune(&out, "svc", limits).unwrap(), [out.join("b")]);
        assert_eq!(left(&out), ["c", "d", "not-a-run", "open", "other"]);
        fs::remove_dir_all(&out).unwrap();
    }
}
