//! Installs what a fresh machine lacks, and nothing it has (see README "Building").

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
    "mariadb-server",
    "postgresql",
    "rabbitmq-server",
];
/// The packaged services of those servers, which the tests do not use.
const PACKAGED_SERVICES: &[&str] = &["mariadb", "postgresql", "rabbitmq-server"];
/// (module, pip requirement) for the tests' Python: pyarrow/pandas and DuckDB read runs and
/// fleets back; moto's server is the S3 store of the fleet tests (its S3 part and Flask: not
/// `moto[server]`, which brings the dependencies of every AWS service); nbconvert with ipykernel
/// and matplotlib runs the notebook; the rest are the clients the protocol workloads
/// (tests/workloads/) use.
const TEST_PYTHON_MODULES: &[(&str, &str)] = &[
    ("pyarrow", "pyarrow"),
    ("pandas", "pandas"),
    ("duckdb", "duckdb"),
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
];
/// What the benchmarks compare against.
const BENCH_TOOLS: &[&str] = &["bpftrace", "strace"];

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
        test_python_modules()?;
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
    stop_packaged_services();
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
/// CPU: stop them and keep them from starting at boot. Only right after installing them,
/// so a developer's own running database is never touched.
fn stop_packaged_services() {
    let systemd = Path::new("/run/systemd/system").is_dir();
    for service in PACKAGED_SERVICES {
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
}

fn test_python_modules() -> Result<()> {
    let modules: Vec<&str> = TEST_PYTHON_MODULES.iter().map(|(m, _)| *m).collect();
    // find_spec looks modules up without importing them (oslo.messaging takes a second).
    let probe = format!(
        "import importlib.util\nfor m in {modules:?}:\n    if importlib.util.find_spec(m) is None: print(m)"
    );
    let out = command("python3")
        .args(["-c", &probe])
        .output()
        .context("running python3")?;
    if !out.status.success() {
        bail!("python3 failed: is Python 3 installed?");
    }
    let missing_modules = String::from_utf8_lossy(&out.stdout).into_owned();
    let missing: Vec<&str> = TEST_PYTHON_MODULES
        .iter()
        .filter(|(m, _)| missing_modules.lines().any(|l| l == *m))
        .map(|(_, requirement)| *requirement)
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: python3 with {}: present", modules.join(", "));
        return Ok(());
    }
    run(command("python3")
        .args(["-m", "pip", "install", "--quiet"])
        .args(&missing))
}

/// The other tools `bench` runs beside Scalpels.
pub fn bench_tools() -> Result<()> {
    if succeeds("py-spy", &["--version"]) {
        eprintln!("xtask: py-spy: present");
    } else {
        run(command("python3").args(["-m", "pip", "install", "--quiet", "py-spy"]))?;
    }
    let missing: Vec<&str> = BENCH_TOOLS
        .iter()
        .copied()
        .filter(|tool| !succeeds(tool, &["--version"]))
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: {}: present", BENCH_TOOLS.join(", "));
        return Ok(());
    }
    apt_install(&missing)
}

/// The real interpreter behind `python3` (not a pyenv shim, whose own forks and execs would
/// show up in a trace).
pub fn python() -> Result<String> {
    let out = command("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .context("running python3")?;
    if !out.status.success() {
        bail!("python3 -c 'import sys' failed: is Python 3 installed?");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
