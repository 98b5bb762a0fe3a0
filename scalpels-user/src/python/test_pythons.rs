//! The CPython interpreters installed here, for tests that check our reading and decoding
//! against real interpreters: Debian's `python3.11`, which `cargo xtask bootstrap` installs (the
//! tests fail without it), and pyenv's 3.8 to 3.13, which this machine's registries cannot
//! provide: each one missing is a skip logged for `cargo xtask test`'s summary (in
//! `SCALPELS_SKIP_LOG`), or a failure when the tests run without that log.

use std::{
    env, fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

pub struct Interpreter {
    pub path: PathBuf,
    pub version: (u8, u8),
}

/// Debian's interpreter, with its USDT probes.
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3.11";

/// Debian's interpreter; the test fails without it.
pub fn debian() -> &'static Path {
    let path = Path::new(DEBIAN_PYTHON);
    assert!(
        path.exists(),
        "{DEBIAN_PYTHON} is missing: run `cargo xtask bootstrap` (Debian's python3)"
    );
    path
}

/// pyenv's 3.8 to 3.13 (one build each), then Debian's `/usr/bin/python3.11`.
pub fn installed() -> Vec<Interpreter> {
    let root = env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")))
        .unwrap_or_else(|| PathBuf::from("/root/.pyenv"));
    let mut builds: Vec<PathBuf> = fs::read_dir(root.join("versions"))
        .map(|dir| dir.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    builds.sort();
    let mut found = Vec::new();
    for minor in 8..=13u8 {
        let prefix = format!("3.{minor}.");
        let python = builds.iter().find_map(|build| {
            let name = build.file_name()?.to_str()?;
            let python = build.join(format!("bin/python3.{minor}"));
            (name.starts_with(&prefix) && python.exists()).then_some(python)
        });
        match python {
            Some(path) => found.push(Interpreter {
                path,
                version: (3, minor),
            }),
            None => skipped(&format!("pyenv's CPython 3.{minor}")),
        }
    }
    found.push(Interpreter {
        path: debian().to_owned(),
        version: (3, 11),
    });
    found
}

/// Logs that the running test could not check what `needs`, for `cargo xtask test`'s summary;
/// fails the test when it runs without that log.
fn skipped(needs: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let Some(log) = env::var_os("SCALPELS_SKIP_LOG") else {
        panic!(
            "{test} needs {needs}, which is not installed (`cargo xtask test` lists such skips)"
        );
    };
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the skip log opens");
    writeln!(log, "{test}: needs {needs}").expect("the skip log is written");
}

/// Writes a test script to a file of its own (code objects name their file).
pub fn script(name: &str, text: &str) -> PathBuf {
    let path = env::temp_dir().join(format!("scalpels-{}-{name}.py", std::process::id()));
    fs::write(&path, text).unwrap();
    path
}

/// The standard output of `python` running `script` to completion.
pub fn output(python: &Interpreter, script: &Path) -> String {
    let out = Command::new(&python.path).arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{} {}: {}",
        python.path.display(),
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Python process left running by a test (its script prints one line, then sleeps); killed
/// when dropped.
pub struct Running {
    child: Child,
    pub first_line: String,
}

impl Running {
    pub fn start(python: &Interpreter, script: &Path) -> Running {
        let mut child = Command::new(&python.path)
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first_line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut first_line).unwrap();
        let running = Running { child, first_line };
        assert!(
            !running.first_line.is_empty(),
            "{} {} printed nothing",
            python.path.display(),
            script.display()
        );
        running
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
