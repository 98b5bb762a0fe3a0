//! The run directory `OUT/<run-id>/`: run ids sort by start time and say what was traced.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use jiff::Timestamp;

use super::dir::Dir;

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

/// Creates `out/<run-id>` (with a numeric suffix if a run of the same second exists), held
/// open for the run ([`Dir`]), and checks that it can be written, so an unwritable output
/// fails before anything is attached. Unless `shared_out`, refuses an `out` that another user
/// could redirect (see [`private`]).
pub fn create(out: &Path, run_id: &str, shared_out: bool) -> Result<Dir> {
    if !shared_out {
        private(out)?;
    }
    fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    // Opened at the path as it resolved once checked: a link on the way is not followed again.
    let out = out
        .canonicalize()
        .with_context(|| format!("resolving {}", out.display()))?;
    let out = Dir::open(&out)?;
    let mut name = run_id.to_owned();
    let mut suffix = 2;
    let dir = loop {
        match out.new_subdir(&name) {
            Ok(dir) => break dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                name = format!("{run_id}-{suffix}");
                suffix += 1;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot create run directory in {}", out.path().display())
                });
            }
        }
    };
    super::reserve_room(&dir)
        .with_context(|| format!("run directory {} is not writable", dir.path().display()))?;
    Ok(dir)
}

/// Users whose directories runs may be written under: root, the user we run as, and the one
/// who ran us through sudo (who may write anywhere as root already).
fn trusted_owners() -> Vec<u32> {
    // SAFETY: no arguments.
    let mut owners = vec![0, unsafe { libc::geteuid() }];
    if let Some(uid) = std::env::var("SUDO_UID").ok().and_then(|v| v.parse().ok()) {
        owners.push(uid);
    }
    owners
}

/// Refuses an `out` that another user could rename or redirect while a run as root writes
/// under it: every existing directory from `/` to it must be owned by a trusted user
/// ([`trusted_owners`]) and writable by no one else unless sticky (as /tmp: there an entry can
/// only be renamed by its owner), and no symbolic link on the way may be owned by another
/// user. Otherwise such a user could swap the run directory for a link to a file of root's,
/// which root would then overwrite. The parts of `out` that do not exist yet are created by
/// us, private.
pub fn private(out: &Path) -> Result<()> {
    let trusted = trusted_owners();
    let refuse = |path: &Path, why: String| {
        anyhow::anyhow!(
            "refusing to write runs under {}: {} {why}, who could redirect the run's files \
             (choose another --out, or pass --allow-shared-out to write there anyway)",
            out.display(),
            path.display()
        )
    };
    let absolute =
        std::path::absolute(out).with_context(|| format!("resolving {}", out.display()))?;
    let mut walked = PathBuf::new();
    let mut existing = PathBuf::from("/");
    for part in absolute.components() {
        walked.push(part);
        let Ok(meta) = fs::symlink_metadata(&walked) else {
            break;
        };
        if meta.file_type().is_symlink() && !trusted.contains(&meta.uid()) {
            return Err(refuse(
                &walked,
                format!("is a link owned by user {}", meta.uid()),
            ));
        }
        existing.clone_from(&walked);
    }
    let canonical = existing
        .canonicalize()
        .with_context(|| format!("resolving {}", existing.display()))?;
    for dir in canonical.ancestors() {
        let meta = fs::metadata(dir).with_context(|| format!("checking {}", dir.display()))?;
        if !trusted.contains(&meta.uid()) {
            return Err(refuse(dir, format!("is owned by user {}", meta.uid())));
        }
        let mode = meta.mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(refuse(
                dir,
                format!("can be written by other users (mode {:o})", mode & 0o7777),
            ));
        }
    }
    Ok(())
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
        let a = create(&out, "r", false).unwrap();
        let b = create(&out, "r", false).unwrap();
        assert_ne!(a.path(), b.path());
        assert!(b.path().ends_with("r-2"));
        fs::remove_dir_all(&out).unwrap();
    }
}
