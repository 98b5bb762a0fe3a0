//! The analysis commands of `scalpels-trace`, which the loader's command line takes as its
//! subcommands.

use std::{path::PathBuf, time::Duration};

use clap::Subcommand;
use scalpels_run::durations::duration;

use crate::analysis::{Format, SqlFormat};
use crate::fleet::destination::Location;
use crate::python::{export::ExportFormat, flamegraph::Request, weighed::Of};

#[derive(Debug, Subcommand)]
pub enum Analysis {
    /// Draw a run's Python stacks as an SVG flame graph, with its folded stacks beside it
    /// (`.folded`, which Speedscope and flamegraph.pl read too).
    Flamegraph {
        /// The run directory.
        #[arg(required_unless_present = "diff")]
        run: Option<PathBuf>,
        /// Draw a differential flame graph instead: AFTER's stacks, each frame red where its
        /// time per second rose since BEFORE, blue where it fell (each side a run directory,
        /// or a directory of runs of one version).
        #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"], conflicts_with = "run")]
        diff: Option<Vec<PathBuf>>,
        /// Where the service waited (off-CPU stacks) instead of where it ran.
        #[arg(long)]
        off_cpu: bool,
        /// Only this process.
        #[arg(long)]
        pid: Option<u32>,
        /// The SVG to write (default: RUN/python-on-cpu.svg, or python-off-cpu.svg with
        /// --off-cpu; with --diff, AFTER/python-on-cpu-diff.svg).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Export a run's Python stacks for a profile viewer: speedscope's JSON (one profile per
    /// process; open it at https://www.speedscope.app), collapsed stacks (flamegraph.pl,
    /// inferno and most viewers) or a pprof profile (go tool pprof, Pyroscope, Grafana).
    Export {
        #[command(flatten)]
        stacks: Request,
        /// speedscope's JSON, collapsed stacks, or pprof's gzipped protobuf.
        #[arg(long, value_enum, default_value_t = ExportFormat::Speedscope)]
        format: ExportFormat,
        /// What weighs the stacks: the Python samples' time, or the latency of the SQL
        /// statements, RPC messages or HTTP requests each stack made.
        #[arg(long, value_enum, default_value_t = Of::Samples)]
        of: Of,
    },
    /// Query runs with SQL. Each table (syscalls, python_samples, ...) holds the rows of every
    /// run given, with the columns host, service and run added; `runs` lists the runs.
    Sql {
        /// Run directories, or directories searched for runs (any layout).
        #[arg(required = true, value_name = "RUN")]
        runs: Vec<PathBuf>,
        /// The query, e.g. "SELECT run, sum(calls) FROM syscalls GROUP BY run".
        #[arg(required = true, value_name = "QUERY")]
        query: String,
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
    },
    /// Where a run spent its time: system calls, disks, files, Python functions, SQL, RPC,
    /// HTTP and processes (the sections of the tracers the run had).
    Report {
        /// The run directory.
        run: PathBuf,
        /// Rows per section.
        #[arg(long, default_value_t = 15)]
        top: usize,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Write the report as one self-contained HTML page (tables, bars, flame graphs).
        #[arg(long, value_name = "FILE", conflicts_with = "format")]
        html: Option<PathBuf>,
    },
    /// What changed from BEFORE to AFTER, per second of run and per call; exits with status 1
    /// when something got slower beyond --threshold and beyond noise (2 on errors). Each side
    /// is a run directory, or a directory of several runs of one version (replicates: then a
    /// change must also be larger than the runs' own spread).
    Diff {
        before: PathBuf,
        after: PathBuf,
        /// Smallest increase that counts as a regression, in percent.
        #[arg(long, default_value_t = 20.0, value_name = "PCT")]
        threshold: f64,
        /// Smallest rise in time per second that counts (1% of one thread by default): a
        /// smaller one, however certain, costs the service next to nothing.
        #[arg(long, value_parser = duration, default_value = "10ms", value_name = "DURATION")]
        min_rise: Duration,
        /// Rows per dimension.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also write the diff as one self-contained HTML page (tables, and the differential
        /// flame graph of the Python stacks on CPU when both sides have them).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Copy runs into a fleet: one dataset per table, partitioned by host, service and run
    /// (TO/<table>/host=H/service=S/run=R/part-NNNNN.parquet, manifests in TO/runs/...), which
    /// DuckDB, Spark and pyarrow.dataset read as one.
    Publish {
        /// Run directories.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The fleet: a directory (e.g. on a shared file system) or s3://BUCKET/PREFIX.
        #[arg(long, value_parser = Location::parse, value_name = "DIR|s3://BUCKET/PREFIX")]
        to: Location,
    },
}
