//! Installs what a fresh machine lacks, and nothing it has (see docs/development.md, "Building by hand").

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, command, run, succeeds};

/// Debian's rustc with a prebuilt `core` for the BPF target, and the LLVM bpf-linker links against.
const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "libpolly-22-dev",
];
const BPF_CORE: &str = "/usr/lib/rustlib/bpfel-unknown-none";
const LLVM_22: &str = "/usr/lib/llvm-22/lib/libLLVM.so";
const TOOLCHAIN: &str = "debian-bpf";
/// Used by the tests: util-linux's `setpriv`/`unshare`, and the servers the protocol tests
/// start instances of (tests/src/servers.rs).
const TEST_DEBIAN_PACKAGES: &[&str] = &[
    "util-linux",
    // Debian's interpreter and its venv module: the tests' Python modules go into a virtual
    // environment of their own (Debian's system Python refuses `pip install`).
    "python3",
    "python3-venv",
    "mariadb-server",
    "postgresql",
    "rabbitmq-server",
    "memcached",
    "redis-server",
    // The sqlite probes' tests read Debian's libsqlite3 (the one Python's sqlite3 module links).
    "libsqlite3-0",
    // The TLS probes' tests: Debian's libssl3 (Python's ssl module links it) and the
    // `openssl` command that makes their certificates.
    "libssl3",
    "openssl",
    // `go tool pprof`, the reader the export tests check pprof profiles with.
    "golang-go",
];
/// The packaged services of those servers, which the tests do not use, by package.
const PACKAGED_SERVICES: &[(&str, &str)] = &[
    ("mariadb-server", "mariadb"),
    ("postgresql", "postgresql"),
    ("rabbitmq-server", "rabbitmq-server"),
    ("memcached", "memcached"),
    ("redis-server", "redis-server"),
];
/// (module, pip requirement) for the tests' Python: pyarrow/pandas and DuckDB read runs and
/// fleets back, and so does Spark in local mode (pinned: the 4.0 line runs on Java 17 and 21,
/// Debian 12's and 13's default runtimes, and Python 3.9 and up); moto's server is the S3
/// store of the fleet tests (its S3 part and Flask: not `moto[server]`, which brings the
/// dependencies of every AWS service); nbconvert with ipykernel and matplotlib runs the
/// notebook; the rest are the clients the protocol workloads (tests/workloads/) use.
const TEST_PYTHON_MODULES: &[(&str, &str)] = &[
    ("pyarrow", "pyarrow"),
    ("pandas", "pandas"),
    ("duckdb", "duckdb"),
    ("pyspark", "pyspark==4.0.5"),
    ("moto", "moto[s3]"),
    ("flask", "flask"),
    ("flask_cors", "flask-cors"),
    ("boto3", "boto3"),
    ("nbconvert", "nbconvert"),
    ("ipykernel", "ipykernel"),
    ("matplotlib", "matplotlib"),
    ("pymysql", "PyMySQL"),
    ("mysql.connector", "mysql-connector-python"),
    ("psycopg2", "psycopg2-binary"),
    ("psycopg", "psycopg[binary]"),
    ("oslo_messaging", "oslo.messaging"),
    ("pymemcache", "pymemcache"),
    ("redis", "redis"),
];
/// What the benchmarks compare against, and wrk, the load generator of the service benchmarks.
const BENCH_TOOLS: &[&str] = &["bpftrace", "strace", "wrk"];

pub fn require_root(why: &str) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    if uid != Some("0") {
        bail!("run this as root ({why}): sudo -E cargo xtask ...");
    }
    Ok(())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    run(command("apt-get").arg("update").arg("-q"))?;
    run(command("apt-get")
        .args(["install", "-y", "-q"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn bpf_linker() -> PathBuf {
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin/bpf-linker"));
    in_cargo_home
        .filter(|p| p.exists())
        .unwrap_or_else(|| "bpf-linker".into())
}

/// Everything `build` needs; with `tests`, also what the tests use.
pub fn all(tests: bool) -> Result<()> {
    if Path::new(BPF_CORE).is_dir() && Path::new(LLVM_22).exists() {
        eprintln!("xtask: Debian BPF toolchain and LLVM 22: present");
    } else {
        eprintln!("xtask: installing Debian's rustc-web with the BPF core, and LLVM 22");
        apt_install(DEBIAN_PACKAGES)?;
    }
    if succeeds(
        bpf_linker().to_str().unwrap_or("bpf-linker"),
        &["--version"],
    ) {
        eprintln!("xtask: bpf-linker: present");
    } else {
        eprintln!("xtask: building bpf-linker against LLVM 22 (about a minute)");
        let mut install = cmd::cargo_command(
            &[
                "install",
                "bpf-linker",
                "--version",
                "0.13.0",
                "--no-default-features",
                "--features",
                "llvm-22",
            ],
            false,
        );
        run(install.env("LLVM_PREFIX", "/usr/lib/llvm-22"))?;
    }
    let toolchains = command("rustup").args(["toolchain", "list"]).output()?;
    if String::from_utf8_lossy(&toolchains.stdout)
        .lines()
        .any(|l| l.starts_with(TOOLCHAIN))
    {
        eprintln!("xtask: rustup toolchain {TOOLCHAIN}: present");
    } else {
        run(command("rustup").args(["toolchain", "link", TOOLCHAIN, "/usr"]))?;
    }
    if tests {
        test_packages()?;
        java_runtime()?;
        venv_with(TEST_PYTHON_MODULES)?;
    }
    Ok(())
}

fn test_packages() -> Result<()> {
    let missing = not_installed(TEST_DEBIAN_PACKAGES)?;
    if missing.is_empty() {
        eprintln!("xtask: {}: present", TEST_DEBIAN_PACKAGES.join(", "));
        return Ok(());
    }
    eprintln!("xtask: installing {} for the tests", missing.join(", "));
    apt_install(&missing)?;
    stop_packaged_services(&missing);
    Ok(())
}

/// Spark's JVM, for the fleet test that reads a fleet with pyspark: any Java that runs will do
/// (a JDK a developer has already counts), else Debian's default runtime.
fn java_runtime() -> Result<()> {
    if succeeds("java", &["-version"]) {
        eprintln!("xtask: java: present");
        return Ok(());
    }
    eprintln!("xtask: installing default-jre-headless (Spark's JVM) for the tests");
    apt_install(&["default-jre-headless"])?;
    if !succeeds("java", &["-version"]) {
        bail!("default-jre-headless is installed but `java -version` fails");
    }
    Ok(())
}

/// Which of `packages` dpkg does not have installed.
fn not_installed<'a>(packages: &[&'a str]) -> Result<Vec<&'a str>> {
    let out = command("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\n"])
        .args(packages)
        .output()
        .context("running dpkg-query")?;
    let installed: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_suffix(" ii ").or_else(|| l.strip_suffix(" ii")))
        .collect();
    Ok(packages
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect())
}

/// Installing a server package starts and enables its service where the machine lets it
/// (systemd, or an init script without a policy-rc.d that forbids it). The tests start
/// instances of their own on free ports, so the packaged ones would only take memory and
/// CPU: stop them and keep them from starting at boot. Only those of the packages just
/// installed (`installed`), so a developer's own running database is never touched.
fn stop_packaged_services(installed: &[&str]) {
    let systemd = Path::new("/run/systemd/system").is_dir();
    let services = PACKAGED_SERVICES
        .iter()
        .filter(|(package, _)| installed.contains(package));
    for (_, service) in services {
        let stopped = if systemd {
            succeeds("systemctl", &["disable", "--now", service])
        } else {
            succeeds("invoke-rc.d", &[service, "stop"])
                && succeeds("update-rc.d", &[service, "disable"])
        };
        eprintln!(
            "xtask: packaged service {service}: {}",
            if stopped {
                "stopped and disabled"
            } else {
                "not running"
            }
        );
    }
    // rabbitmq-server's install also starts Erlang's port mapper, which outlives the broker
    // (and on systemd is socket-activated): the tests run one of their own on a free port.
    if !installed.contains(&"rabbitmq-server") {
        return;
    }
    let stopped = if systemd {
        succeeds(
            "systemctl",
            &["disable", "--now", "epmd.socket", "epmd.service"],
        )
    } else {
        succeeds("epmd", &["-kill"])
    };
    eprintln!(
        "xtask: Erlang port mapper (epmd): {}",
        if stopped { "stopped" } else { "not running" }
    );
}

/// The virtual environment the tests and benchmarks run their Python in, made from Debian's
/// interpreter (what a Debian host runs its services with) and kept in `target/`.
pub fn venv_python() -> PathBuf {
    crate::root().join(VENV).join("bin/python3")
}

const VENV: &str = "target/python-venv";
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Creates the virtual environment if it is missing, and installs in it whichever of
/// `modules` ((import name, pip requirement)) it lacks.
pub fn venv_with(modules: &[(&str, &str)]) -> Result<PathBuf> {
    let python = venv_python();
    if !python.exists() {
        eprintln!("xtask: creating the Python virtual environment {VENV}");
        run(command(DEBIAN_PYTHON).args(["-m", "venv", VENV]))?;
    }
    let names: Vec<&str> = modules.iter().map(|(m, _)| *m).collect();
    // find_spec looks modules up without importing them (oslo.messaging takes a second); for a
    // dotted name it imports the parent, which raises when the parent is missing.
    let probe = "import importlib.util, sys\n\
        for m in sys.argv[1:]:\n\
        \x20   try:\n\
        \x20       found = importlib.util.find_spec(m) is not None\n\
        \x20   except ImportError:\n\
        \x20       found = False\n\
        \x20   if not found: print(m)";
    let out = command(&python)
        .args(["-c", probe])
        .args(&names)
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "{} could not look modules up: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let missing_modules = String::from_utf8_lossy(&out.stdout).into_owned();
    let missing: Vec<&str> = modules
        .iter()
        .filter(|(m, _)| missing_modules.lines().any(|l| l == *m))
        .map(|(_, requirement)| *requirement)
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: {VENV} with {}: present", names.join(", "));
    } else {
        pip_install(&python, &missing)?;
    }
    Ok(python)
}

/// Installs `requirements` into the virtual environment whose interpreter is `python`.
fn pip_install(python: &Path, requirements: &[&str]) -> Result<()> {
    run(command(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(requirements))
}

/// The real OpenStack Keystone of the service benchmarks, with the WSGI server and MariaDB
/// driver it runs with there: a virtual environment of its own, so its oslo and SQLAlchemy
/// versions never meet the project's. Pinned to what the bench was checked with (Keystone's
/// newest release then, which supports Python 3.11 to 3.13); its other dependencies resolve to
/// their newest versions, which it ran with, as nothing pins them short of OpenStack's
/// upper-constraints.
const KEYSTONE_REQUIREMENTS: &[&str] = &["keystone==30.0.0", "gunicorn==27.0.1", "PyMySQL==1.2.4"];
const KEYSTONE_VENV: &str = "target/keystone-venv";
/// Written into the Keystone environment once its requirements are in, so a later bench finds
/// them present without asking pip (seconds) and installs again when the pins change.
const KEYSTONE_INSTALLED: &str = "bench-requirements.txt";

pub fn keystone_venv_python() -> PathBuf {
    crate::root().join(KEYSTONE_VENV).join("bin/python3")
}

/// Makes the Keystone environment if it is missing or holds other pins than
/// KEYSTONE_REQUIREMENTS; returns its interpreter.
pub fn keystone_venv() -> Result<PathBuf> {
    let python = keystone_venv_python();
    let installed = crate::root().join(KEYSTONE_VENV).join(KEYSTONE_INSTALLED);
    let wanted = KEYSTONE_REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&installed).is_ok_and(|pins| pins == wanted) {
        eprintln!(
            "xtask: {KEYSTONE_VENV} with {}: present",
            KEYSTONE_REQUIREMENTS.join(", ")
        );
        return Ok(python);
    }
    if !python.exists() {
        eprintln!("xtask: creating the Keystone virtual environment {KEYSTONE_VENV}");
        run(command(DEBIAN_PYTHON).args(["-m", "venv", KEYSTONE_VENV]))?;
    }
    pip_install(&python, KEYSTONE_REQUIREMENTS)?;
    std::fs::write(&installed, wanted)
        .with_context(|| format!("writing {}", installed.display()))?;
    Ok(python)
}

/// The other tools `bench` runs beside Scalpels.
pub fn bench_tools() -> Result<()> {
    let py_spy = venv_python().with_file_name("py-spy");
    if py_spy.exists() {
        eprintln!("xtask: py-spy: present");
    } else {
        venv_with(&[])?;
        run(command(venv_python()).args(["-m", "pip", "install", "--quiet", "py-spy"]))?;
    }
    let missing: Vec<&str> = BENCH_TOOLS
        .iter()
        .copied()
        .filter(|tool| !on_path(tool))
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: {}: present", BENCH_TOOLS.join(", "));
        return Ok(());
    }
    apt_install(&missing)
}

/// Whether `program` is in a directory of $PATH (wrk has no option that exits 0 without
/// generating load, so running it is no test).
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Debian's interpreter, installed if missing: the demo service runs on it.
pub fn python() -> Result<String> {
    if !not_installed(&["python3"])?.is_empty() {
        apt_install(&["python3"])?;
    }
    Ok(DEBIAN_PYTHON.to_owned())
}
