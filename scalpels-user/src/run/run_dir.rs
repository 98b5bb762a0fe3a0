//! The run directory `OUT/<run-id>/`: run ids sort by start time and say what was traced.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use jiff::Timestamp;

/// `20261125T031500Z-nova-compute`: UTC start time, then the target's label made file-safe.
pub fn run_id(start: Timestamp, label: &str) -> String {
    format!("{}-{}", start.strftime("%Y%m%dT%H%M%SZ"), file_safe(label))
}

/// A name safe in a path and as a Hive partition value in any reader (some URL-decode
/// directory names, others do not): letters, digits, `.`, `_` and `-` only, at most 64.
pub fn file_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// Creates `out/<run-id>` (with a numeric suffix if a run of the same second exists) and checks
/// that it can be written, so an unwritable output fails before anything is attached.
pub fn create(out: &Path, run_id: &str) -> Result<PathBuf> {
    fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let mut dir = out.join(run_id);
    let mut suffix = 2;
    loop {
        match fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                dir = out.join(format!("{run_id}-{suffix}"));
                suffix += 1;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create run directory in {}", out.display()));
            }
        }
    }
    let probe = dir.join(".write-test");
    fs::write(&probe, b"ok")
        .with_context(|| format!("run directory {} is not writable", dir.display()))?;
    fs::remove_file(&probe).ok();
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time_and_are_file_safe() {
        let t1: Timestamp = "2026-11-25T03:15:00Z".parse().unwrap();
        let t2: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let a = run_id(t1, "nova-compute");
        assert_eq!(a, "20261125T031500Z-nova-compute");
        assert!(a < run_id(t2, "aaa"));
        assert_eq!(run_id(t1, "python3 /x y"), "20261125T031500Z-python3__x_y");
        assert_eq!(file_safe("a/b=c d%20"), "a_b_c_d_20");
        assert_eq!(file_safe(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn same_second_runs_get_distinct_directories() {
        let out = std::env::temp_dir().join(format!("scalpels-run-dir-{}", std::process::id()));
        let a = create(&out, "r").unwrap();
        let b = create(&out, "r").unwrap();
        assert_ne!(a, b);
        assert!(b.ends_with("r-2"));
        fs::remove_dir_all(&out).unwrap();
    }
}
