//! The CPython interpreters installed here, for tests that check our reading and decoding
//! against real interpreters. Only 3.11 is promised on a fresh machine: the others are tested
//! when pyenv has them, and skipped otherwise.

use std::{
    env, fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

pub struct Interpreter {
    pub path: PathBuf,
    pub version: (u8, u8),
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
        if let Some(path) = python {
            found.push(Interpreter {
                path,
                version: (3, minor),
            });
        }
    }
    let debian = PathBuf::from("/usr/bin/python3.11");
    if debian.exists() {
        found.push(Interpreter {
            path: debian,
            version: (3, 11),
        });
    }
    if found.is_empty() {
        eprintln!("no CPython 3.8 to 3.13 installed: nothing to check");
    }
    found
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
