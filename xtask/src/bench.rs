//! `cargo xtask bench`: what tracing costs the traced program, beside other tools doing the
//! same job on the same machine in the same run, and what the loader costs (see BENCHMARKS.md).
//!
//! Two parts: micro benchmarks (`micro`: workloads that measure themselves, so loader start-up
//! and attach time are not counted as slowdown) and service benchmarks (`service`: real
//! services saturated by a load generator for a fixed time, traced by `--pid`). Every
//! measurement alternates the ways of running (one run of each way per round), so that a
//! machine whose speed drifts (other builds, thermal limits) spreads its drift evenly over the
//! ways instead of favouring the ways measured first.

mod keystone;
mod loader;
mod micro;
mod process;
mod service;
mod traced;

use std::fs;

use anyhow::{Context as _, Result};

use crate::{cmd, root, setup};

pub struct Options {
    pub repeats: usize,
    pub calls: u64,
    pub requests: u64,
    pub file_ops: u64,
    /// Only this part (both when None).
    pub only: Option<Part>,
    /// How long the load generator saturates a service in each run.
    pub service_seconds: u64,
    /// The services to measure (every one when empty), by their load mix's name.
    pub services: Vec<String>,
    /// The ways to run them (every one when empty): untraced, all, or a tracer's name.
    pub ways: Vec<String>,
    /// More scalpels-trace options for every traced run of a service.
    pub trace_args: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Micro,
    Service,
}

/// (module, pip requirement) the service benchmarks run in the project's virtual environment:
/// the WSGI server, the ORM and its MariaDB driver, the notifier (oslo.messaging on kombu), and
/// pyarrow to read the runs' stacks back.
const BENCH_PYTHON_MODULES: &[(&str, &str)] = &[
    ("gunicorn", "gunicorn"),
    ("sqlalchemy", "SQLAlchemy"),
    ("pymysql", "PyMySQL"),
    ("oslo_messaging", "oslo.messaging"),
    ("kombu", "kombu"),
    ("pyarrow", "pyarrow"),
];

pub fn run(opts: &Options) -> Result<()> {
    setup::require_root("the benchmarks load eBPF programs")?;
    // The test set-up brings the MariaDB and RabbitMQ servers, and PyMySQL.
    setup::all(true)?;
    setup::bench_tools()?;
    setup::venv_with(BENCH_PYTHON_MODULES)?;
    cmd::cargo(&["build"], true)?;
    let dir = root().join("target/bench");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mariadb = process::TestServer::start("mariadb")?;

    let mut report = format!(
        "Median of {} runs each; {} CPUs, kernel {}.\n",
        opts.repeats,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs::read_to_string("/proc/sys/kernel/osrelease")?.trim(),
    );
    if opts.only != Some(Part::Service) {
        report += &micro::run(&dir, &mariadb, opts)?;
    }
    if opts.only != Some(Part::Micro) {
        report += &service::run(&dir, &mariadb, opts)?;
    }
    println!("{report}");
    fs::write(dir.join("results.md"), &report)?;
    eprintln!("xtask: bench: written to target/bench/results.md");
    Ok(())
}

/// Runs every way once per round, for `repeats` rounds, and returns each way's results in the
/// order of `ways`.
fn alternate<W, T>(
    ways: &[W],
    repeats: usize,
    mut run: impl FnMut(&W, usize) -> Result<T>,
) -> Result<Vec<Vec<T>>> {
    let mut results: Vec<Vec<T>> = ways.iter().map(|_| Vec::new()).collect();
    for round in 1..=repeats {
        for (way, results) in ways.iter().zip(&mut results) {
            results.push(run(way, round)?);
        }
    }
    Ok(results)
}

/// The median (the upper one of an even count); NaN for no values.
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
