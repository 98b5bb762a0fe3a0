//! `cargo xtask`: one command per chore, each doing its own set-up.

mod bench;
mod cmd;
mod setup;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Xtask {
    #[command(subcommand)]
    command: Chore,
}

#[derive(Subcommand)]
enum Chore {
    /// Install what building needs (idempotent: skips what is there).
    Setup {
        /// Also what the tests need (the servers and Python modules they use).
        #[arg(long)]
        tests: bool,
    },
    /// Set up, then build the loader and its eBPF programs.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Set up, build, and trace a service, or the bundled demo workload when none is given.
    Demo {
        /// A service to trace instead of the demo workload (e.g. nova-compute).
        #[arg(long)]
        service: Option<String>,
        #[arg(long, default_value = "5s")]
        duration: String,
    },
    /// Measure what tracing costs, beside bpftrace and strace, and on services (as root; see
    /// BENCHMARKS.md).
    Bench {
        /// Runs of each way per measurement, alternating (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Only the micro benchmarks, or only the service benchmarks (default: both).
        #[arg(long, value_enum)]
        only: Option<bench::Part>,
        /// Seconds a service benchmark run saturates the service.
        #[arg(long, default_value_t = 20)]
        service_seconds: u64,
        /// System calls made by the C workload per run.
        #[arg(long, default_value_t = 2_000_000)]
        calls: u64,
        /// Requests made by the Python workload per run.
        #[arg(long, default_value_t = 200_000)]
        requests: u64,
        /// Reads made by the file I/O workload per run (writes: a tenth).
        #[arg(long, default_value_t = 500_000)]
        file_ops: u64,
        /// Only these services (default: all): openstack, http, keystone.
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        /// Only these ways of running each service (default: all): untraced, all, or a
        /// tracer's name (that tracer alone).
        #[arg(long, value_delimiter = ',')]
        ways: Vec<String>,
        /// More scalpels-trace options for every traced run of the service benchmarks, to
        /// measure what an option costs (e.g. "--python-hz 19").
        #[arg(long, allow_hyphen_values = true)]
        trace_args: Option<String>,
    },
    /// Set up, check formatting and lints, build, and run every test (as root).
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

/// The workspace root (xtask lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_owned()
}

fn main() -> Result<()> {
    match Xtask::parse().command {
        Chore::Setup { tests } => setup::all(tests),
        Chore::Build { release } => {
            setup::all(false)?;
            cmd::cargo(&["build"], release)
        }
        Chore::Demo { service, duration } => {
            setup::require_root("the demo loads eBPF programs")?;
            setup::all(false)?;
            cmd::cargo(&["build"], true)?;
            let trace = root().join("target/release/scalpels-trace");
            let mut args = vec!["--duration".to_owned(), duration];
            match service {
                Some(service) => args.extend(["--service".to_owned(), service]),
                None => args.extend([
                    "--".to_owned(),
                    setup::python()?,
                    root()
                        .join("scalpels-user/demo/workload.py")
                        .display()
                        .to_string(),
                ]),
            }
            cmd::run(cmd::command(trace).args(&args))
        }
        Chore::Bench {
            repeats,
            only,
            service_seconds,
            calls,
            requests,
            file_ops,
            services,
            ways,
            trace_args,
        } => bench::run(&bench::Options {
            repeats,
            calls,
            requests,
            file_ops,
            only,
            service_seconds,
            services,
            ways,
            trace_args: trace_args
                .map(|args| args.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        }),
        Chore::Test { args } => {
            setup::require_root("the tests load eBPF programs")?;
            setup::all(true)?;
            cmd::cargo(&["fmt", "--all", "--", "--check"], false)?;
            cmd::cargo(&["clippy", "--all-targets", "--", "-D", "warnings"], false)?;
            cmd::cargo(&["build"], false)?;
            let trace = root().join("target/debug/scalpels-trace");
            // Tests that need an interpreter this machine lacks log it here, and are listed
            // below, rather than passing silently.
            let skips = root().join("target/test-skips.log");
            let _ = std::fs::remove_file(&skips);
            let mut test = cmd::cargo_command(&["test", "--no-fail-fast"], false);
            test.env("SCALPELS_TRACE", trace)
                .env("SCALPELS_PYTHON", setup::venv_python())
                .env("SCALPELS_SKIP_LOG", &skips)
                .args(["--"])
                .args(&args);
            let result = cmd::run(&mut test);
            report_skips(&skips);
            result
        }
    }
}

/// What the tests could not check on this machine (the CPython builds pyenv lacks here), from
/// the log the tests append to; each test names what to install.
fn report_skips(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut skips: Vec<&str> = text.lines().collect();
    skips.sort_unstable();
    skips.dedup();
    if skips.is_empty() {
        eprintln!("xtask: test: nothing skipped (every CPython of the matrix was exercised)");
        return;
    }
    eprintln!(
        "xtask: test: {} checks skipped for interpreters not installed here \
         (pyenv's builds come from python.org, which this machine's registries do not reach):",
        skips.len()
    );
    for skip in skips {
        eprintln!("  {skip}");
    }
}
