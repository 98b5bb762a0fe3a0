//! Command-line interface of `scalpels-trace`.

use std::{path::PathBuf, time::Duration};

use clap::{ArgGroup, Args, Parser, Subcommand};
use serde::Serialize;

use crate::analysis::{Format, SqlFormat};
use crate::fleet::destination::Location;
use crate::options::{HOUR, duration, duration_within};
use crate::python::export::ExportFormat;
use crate::{block, files, proc, protocols, python, syscalls};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// `--duration`: 10 ms to a year.
fn run_length(s: &str) -> Result<Duration, String> {
    duration_within(s, Duration::from_millis(10), 365 * DAY)
}

/// `--interval`: 10 ms to an hour.
fn interval(s: &str) -> Result<Duration, String> {
    duration_within(s, Duration::from_millis(10), HOUR)
}

/// `--flush-interval`: 100 ms to an hour.
fn flush_interval(s: &str) -> Result<Duration, String> {
    duration_within(s, Duration::from_millis(100), HOUR)
}

/// `--wait-timeout`: 0 (fail at once) to a week.
fn wait_timeout(s: &str) -> Result<Duration, String> {
    duration_within(s, Duration::ZERO, 7 * DAY)
}

#[derive(Debug, Subcommand)]
pub enum Analysis {
    /// Draw a run's Python stacks as an SVG flame graph, with its folded stacks beside it
    /// (`.folded`, which Speedscope and flamegraph.pl read too).
    Flamegraph {
        /// The run directory.
        run: PathBuf,
        /// Where the service waited (off-CPU stacks) instead of where it ran.
        #[arg(long)]
        off_cpu: bool,
        /// Only this process.
        #[arg(long)]
        pid: Option<u32>,
        /// The SVG to write (default: RUN/python-on-cpu.svg or python-off-cpu.svg).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Export a run's Python stacks for a profile viewer: speedscope's JSON (one profile per
    /// process; open it at https://www.speedscope.app) or collapsed stacks (flamegraph.pl,
    /// inferno and most viewers).
    Export {
        /// The run directory.
        run: PathBuf,
        #[arg(long, value_enum, default_value_t = ExportFormat::Speedscope)]
        format: ExportFormat,
        /// Where the service waited (off-CPU stacks) instead of where it ran.
        #[arg(long)]
        off_cpu: bool,
        /// Only this process.
        #[arg(long)]
        pid: Option<u32>,
        /// The file to write (default: RUN/python-on-cpu.speedscope.json, .collapsed, or
        /// python-off-cpu.*).
        #[arg(short, long)]
        output: Option<PathBuf>,
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

/// Each tracer's options, declared by the tracer as a `clap::Args` struct (under a heading
/// of its own in `--help`), and written whole, flattened, to the manifest's `options`.
#[derive(Debug, Args, Serialize)]
#[group(skip)]
pub struct TracerOptions {
    #[command(flatten)]
    #[serde(flatten)]
    pub syscalls: syscalls::Options,
    #[command(flatten)]
    #[serde(flatten)]
    pub block: block::Options,
    #[command(flatten)]
    #[serde(flatten)]
    pub files: files::Options,
    #[command(flatten)]
    #[serde(flatten)]
    pub protocols: protocols::Options,
    #[command(flatten)]
    #[serde(flatten)]
    pub proc: proc::Options,
    #[command(flatten)]
    #[serde(flatten)]
    pub python: python::Options,
}

impl TracerOptions {
    /// Every tracer's options, by name, as the manifest records them.
    pub fn to_manifest(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(options)) => options,
            // Plain numbers, booleans and strings: serializing them cannot fail.
            _ => unreachable!("tracer options serialize to an object"),
        }
    }
}

/// Trace what an OpenStack service (or any process) does with eBPF, into Parquet files.
#[derive(Debug, Parser)]
#[command(
    name = "scalpels-trace",
    version,
    group(ArgGroup::new("target").args(["service", "pid", "command", "list_tracers"]).required(true)),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  sudo scalpels-trace --service nova-compute --duration 60s\n  \
                  sudo scalpels-trace --pid 1234 --pid 5678\n  \
                  sudo scalpels-trace --tracers syscalls -- python3 app.py\n  \
                  scalpels-trace flamegraph scalpels-runs/20261125T031500Z-nova-compute\n  \
                  scalpels-trace report scalpels-runs/20261125T031500Z-nova-compute\n  \
                  scalpels-trace diff RUN_BEFORE RUN_AFTER --threshold 20\n  \
                  scalpels-trace sql scalpels-runs \"SELECT run, sum(calls) FROM syscalls GROUP BY run\"\n  \
                  scalpels-trace publish scalpels-runs/* --to s3://traces/prod"
)]
pub struct Cli {
    /// Work on a finished run instead of tracing.
    #[command(subcommand)]
    pub analysis: Option<Analysis>,

    /// Trace a service: a systemd unit (by its cgroup), else processes with this name.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["pid", "command"])]
    pub service: Option<String>,

    /// With --service: how long to wait for a service that is not running yet, once the
    /// tracers are attached (0: fail at once, naming close matches; at most 7 days).
    #[arg(long, value_parser = wait_timeout, default_value = "5m", value_name = "DURATION",
          conflicts_with_all = ["pid", "command"])]
    pub wait_timeout: Duration,

    /// Trace this process and its children (repeatable).
    #[arg(short, long, value_name = "PID", conflicts_with = "command")]
    pub pid: Vec<u32>,

    /// Start this command and trace it until it exits.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    /// Tracers to run, comma-separated (default: all available). See --list-tracers.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub tracers: Vec<String>,

    /// Directory that receives one sub-directory per run; or s3://BUCKET/PREFIX: the run is
    /// uploaded in the fleet layout as it is written (see publish), staged in --staging.
    #[arg(long, default_value = "scalpels-runs", value_parser = Location::parse, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub out: Location,

    /// Write runs under an --out (or --staging) that users other than root, you and the user
    /// who ran sudo own or can write to. Refused by default: such a user could swap the run's
    /// directory for a link to a file of root's while the run writes it.
    #[arg(long)]
    pub allow_shared_out: bool,

    /// With --out s3://...: where the run is written before its files are uploaded (removed
    /// once all are; kept if any upload failed).
    #[arg(long, default_value = "/var/tmp/scalpels-staging", value_name = "DIR")]
    pub staging: PathBuf,

    /// This machine's name in a fleet of runs (the host= partition); default: the host name.
    #[arg(long, env = "SCALPELS_HOST_LABEL", value_name = "NAME")]
    pub host_label: Option<String>,

    /// Stop after this long (e.g. 30s, 5m; 10ms to 365 days); default: until Ctrl-C or the
    /// targets exit.
    #[arg(long, value_parser = run_length, value_name = "DURATION")]
    pub duration: Option<Duration>,

    /// How often in-kernel aggregates become rows (10ms to 1h).
    #[arg(long, value_parser = interval, default_value = "1s", value_name = "DURATION")]
    pub interval: Duration,

    /// Measure each eBPF program's runs and kernel time (written to the manifest's
    /// `tracers[].programs` and the summary). The kernel then times every program run, which
    /// costs a few tens of nanoseconds per run: for finding what tracing costs, not for always.
    #[arg(long)]
    pub bpf_stats: bool,

    /// How often Parquet row groups are closed, so a killed run keeps them (100ms to 1h).
    #[arg(long, value_parser = flush_interval, default_value = "5s", value_name = "DURATION")]
    pub flush_interval: Duration,

    /// List the tracers and exit.
    #[arg(long)]
    pub list_tracers: bool,

    /// Each tracer's options, declared by the tracer (last: each sets the help heading of
    /// what follows).
    #[command(flatten)]
    pub options: TracerOptions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_plain_seconds_or_a_unit() {
        assert_eq!(duration("4"), Ok(Duration::from_secs(4)));
        assert_eq!(duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("-1").unwrap_err().contains("seconds"));
        assert!(duration("4 apples").unwrap_err().contains("30s, 5m"));
    }

    /// Every bounded option refuses what it cannot honour before anything is loaded.
    #[test]
    fn options_out_of_range_are_refused_with_their_range() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["scalpels-trace"];
            argv.extend(args);
            argv.extend(["--service", "svc"]);
            Cli::try_parse_from(argv).map_err(|e| e.to_string())
        };
        for bad in [
            &["--interval", "0s"][..],
            &["--interval", "1ns"],
            &["--interval", "2h"],
            &["--flush-interval", "0"],
            &["--duration", "0s"],
            &["--duration", "400days"],
            &["--wait-timeout", "8days"],
            &["--slow-syscall", "2h"],
            &["--slow-file-io", "2h"],
            &["--python-off-cpu-every", "0s"],
            &["--python-hz", "0"],
            &["--python-hz", "100000"],
            &["--python-depth", "0"],
            &["--python-depth", "5000"],
            &["--payload-bytes", "0"],
            &[
                "--payload-bytes",
                &(tracers::protocols::MAX_PAYLOAD + 1).to_string(),
            ],
        ] {
            let error = parse(bad).expect_err(&format!("{bad:?} accepted"));
            assert!(
                error.contains("range") || error.contains("not in"),
                "{bad:?}: {error}"
            );
        }
        let ok = parse(&[
            "--interval",
            "10ms",
            "--duration",
            "1h",
            "--wait-timeout",
            "0",
            "--python-hz",
            "1000",
            "--slow-syscall",
            "1us",
        ])
        .unwrap();
        assert_eq!(ok.interval, Duration::from_millis(10));
        assert_eq!(ok.options.python.python_hz, python::PYTHON_HZ_MAX);
        assert!(ok.wait_timeout.is_zero());
    }

    #[test]
    fn needs_exactly_one_kind_of_target() {
        assert!(Cli::try_parse_from(["scalpels-trace"]).is_err());
        assert!(Cli::try_parse_from(["scalpels-trace", "--service", "a", "--pid", "1"]).is_err());
        let cli = Cli::try_parse_from([
            "scalpels-trace",
            "--slow-syscall",
            "5ms",
            "--",
            "sleep",
            "1",
        ])
        .unwrap();
        assert_eq!(cli.command, ["sleep", "1"]);
        assert_eq!(cli.options.syscalls.slow_syscall, Duration::from_millis(5));
        let cli = Cli::try_parse_from([
            "scalpels-trace",
            "-p",
            "1",
            "-p",
            "2",
            "--tracers",
            "syscalls",
        ])
        .unwrap();
        assert_eq!(cli.pid, [1, 2]);
        assert_eq!(cli.tracers, ["syscalls"]);
        let cli =
            Cli::try_parse_from(["scalpels-trace", "flamegraph", "run", "--off-cpu"]).unwrap();
        assert!(matches!(
            cli.analysis,
            Some(Analysis::Flamegraph { off_cpu: true, .. })
        ));
        let cli = Cli::try_parse_from(["scalpels-trace", "sql", "a", "b", "SELECT 1"]).unwrap();
        let Some(Analysis::Sql { runs, query, .. }) = cli.analysis else {
            panic!("sql parses");
        };
        assert_eq!(runs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(query, "SELECT 1");
        assert!(Cli::try_parse_from(["scalpels-trace", "sql", "SELECT 1"]).is_err());
        let cli =
            Cli::try_parse_from(["scalpels-trace", "diff", "a", "b", "--threshold", "5"]).unwrap();
        assert!(matches!(
            cli.analysis,
            Some(Analysis::Diff { threshold: 5.0, .. })
        ));
        let cli = Cli::try_parse_from(["scalpels-trace", "publish", "a", "b", "--to", "s3://f/p"])
            .unwrap();
        assert!(matches!(
            cli.analysis,
            Some(Analysis::Publish { runs, to: Location::S3 { .. } }) if runs.len() == 2
        ));
        assert!(Cli::try_parse_from(["scalpels-trace", "publish", "--to", "x"]).is_err());
        let cli = Cli::try_parse_from(["scalpels-trace", "--out", "s3://f", "-p", "1"]).unwrap();
        assert_eq!(cli.out.to_string(), "s3://f");
        let cli = Cli::try_parse_from(["scalpels-trace", "--service", "a"]).unwrap();
        assert_eq!(cli.wait_timeout, Duration::from_secs(300));
        let cli = Cli::try_parse_from(["scalpels-trace", "--service", "a", "--wait-timeout", "0"])
            .unwrap();
        assert!(cli.wait_timeout.is_zero());
        // Only a service is waited for.
        assert!(Cli::try_parse_from(["scalpels-trace", "-p", "1", "--wait-timeout", "1"]).is_err());
        assert!(
            Cli::try_parse_from(["scalpels-trace", "--wait-timeout", "1", "--", "true"]).is_err()
        );
    }

    #[test]
    fn every_tracer_option_is_in_the_manifest_under_its_flag_name() {
        let cli =
            Cli::try_parse_from(["scalpels-trace", "--python-off-cpu", "off", "-p", "1"]).unwrap();
        let options = serde_json::Value::Object(cli.options.to_manifest());
        assert_eq!(
            options,
            serde_json::json!({
                "slow_syscall_ns": 10_000_000,
                "block_all": false,
                "block_events": true,
                "slow_file_io_ns": 10_000_000,
                "payload_bytes": 4096,
                "sql_literals": false,
                "keep_cmdline": false,
                "python_hz": 99,
                "python_depth": tracers::python::MAX_WALK,
                "python_off_cpu": false,
                "python_off_cpu_every_ns": 1_000_000,
                "python_calls": false,
            })
        );
    }
}
