//! The CPython interpreters the tests run besides the tests' own: Debian's `python3.11`, which
//! `cargo xtask bootstrap` installs (a test that needs it fails without it), and pyenv's builds,
//! which this machine's registries cannot provide (python.org is out of reach): a test that
//! needs one that is missing is skipped *out loud*, in the log `cargo xtask test` names in
//! `SCALPELS_SKIP_LOG` and lists at its end; run by hand without that log, it fails.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

/// Debian's interpreter, with its USDT probes.
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3.11";

pub fn debian_python() -> &'static str {
    assert!(
        Path::new(DEBIAN_PYTHON).exists(),
        "{DEBIAN_PYTHON} is missing: run `cargo xtask bootstrap` (Debian's python3)"
    );
    DEBIAN_PYTHON
}

/// Where pyenv keeps its builds: `$PYENV_ROOT/versions`, else `~/.pyenv/versions`.
pub fn pyenv_versions() -> PathBuf {
    std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")))
        .unwrap_or_else(|| PathBuf::from("/root/.pyenv"))
        .join("versions")
}

/// pyenv's build of Python `minor` (`"3.11"`, `"2.7"`), if installed.
pub fn pyenv_python(minor: &str) -> Option<PathBuf> {
    let mut builds: Vec<PathBuf> = std::fs::read_dir(pyenv_versions())
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    builds.sort();
    builds.into_iter().find_map(|build| {
        let name = build.file_name()?.to_str()?.to_owned();
        let python = build.join(format!("bin/python{minor}"));
        (name.starts_with(&format!("{minor}.")) && python.exists()).then_some(python)
    })
}

/// `found`, or (when it is `None`) a skip of the running test, logged for `cargo xtask test`'s
/// summary with what it `needs`; without the log (a test run by hand) the test fails.
pub fn or_skip(found: Option<PathBuf>, needs: &str) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let Some(log) = std::env::var_os("SCALPELS_SKIP_LOG") else {
        panic!(
            "{test} needs {needs}, which is not installed (`cargo xtask test` lists such skips)"
        );
    };
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the skip log opens");
    writeln!(log, "{test}: needs {needs}").expect("the skip log is written");
    None
}
