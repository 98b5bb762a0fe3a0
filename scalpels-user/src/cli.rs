//! Command-line interface of `scalpels-trace`.

use std::{path::PathBuf, time::Duration};

use clap::{ArgGroup, Args, Parser};
use serde::Serialize;

use crate::fleet::destination::Location;
use crate::options::{HOUR, duration_within};
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

/// `--rotate`: a second to a day.
fn rotate_every(s: &str) -> Result<Duration, String> {
    duration_within(s, Duration::from_secs(1), DAY)
}

/// `--keep-runs`: at least one.
fn runs_kept(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("{s} is out of range: a number of runs from 1 up")),
        Ok(n) => Ok(n),
    }
}

/// `--keep-bytes`: a number of bytes, with an optional binary unit (`500M`, `20G`).
fn bytes(s: &str) -> Result<u64, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |at| s.split_at(at));
    let scale: u64 = match unit.trim_end_matches(['B', 'b', 'i']) {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        "T" | "t" => 1 << 40,
        _ => return Err(format!("{s}: give bytes, or a number and K, M, G or T")),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s} is out of range: from 1 byte up"))
}

/// `--wait-timeout`: 0 (fail at once) to a week.
fn wait_timeout(s: &str) -> Result<Duration, String> {
    duration_within(s, Duration::ZERO, 7 * DAY)
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
                  scalpels-trace flamegraph --diff RUN_BEFORE RUN_AFTER\n  \
                  scalpels-trace report scalpels-runs/20261125T031500Z-nova-compute\n  \
                  scalpels-trace diff RUN_BEFORE RUN_AFTER --threshold 20\n  \
                  scalpels-trace sql scalpels-runs \"SELECT run, sum(calls) FROM syscalls GROUP BY run\"\n  \
                  scalpels-trace publish scalpels-runs/* --to s3://traces/prod"
)]
pub struct Cli {
    /// Work on a finished run instead of tracing.
    #[cfg(feature = "analysis")]
    #[command(subcommand)]
    pub analysis: Option<scalpels_analysis::cli::Analysis>,

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

    /// Continuous mode: close the run every DURATION (1s to 1 day) and go on in a new one,
    /// with the tracers still attached; the closed run's ended_at is the next one's
    /// traced_from. With --out s3://..., each run is uploaded as it closes.
    #[arg(long, value_parser = rotate_every, value_name = "DURATION")]
    pub rotate: Option<Duration>,

    /// With --rotate: keep the N newest closed runs of this service in the output directory,
    /// removing older ones as runs close.
    #[arg(long, requires = "rotate", value_parser = runs_kept, value_name = "N")]
    pub keep_runs: Option<usize>,

    /// With --rotate: keep the newest closed runs of this service whose files fit in BYTES
    /// (e.g. 500M, 20G), removing older ones as runs close.
    #[arg(long, requires = "rotate", value_parser = bytes, value_name = "BYTES")]
    pub keep_bytes: Option<u64>,

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
            &["--rotate", "500ms"],
            &["--rotate", "2days"],
            &["--rotate", "1m", "--keep-runs", "0"],
            &["--rotate", "1m", "--keep-bytes", "0"],
            &["--rotate", "1m", "--keep-bytes", "99999999T"],
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
    fn retention_takes_bytes_with_units_and_needs_rotation() {
        assert_eq!(bytes("1500"), Ok(1500));
        assert_eq!(bytes("500M"), Ok(500 << 20));
        assert_eq!(bytes("20GiB"), Ok(20 << 30));
        assert!(bytes("M").is_err());
        let parse = |args: &[&str]| {
            let mut argv = vec!["scalpels-trace", "--service", "svc"];
            argv.extend(args);
            Cli::try_parse_from(argv)
        };
        assert!(parse(&["--keep-runs", "3"]).is_err());
        let cli = parse(&[
            "--rotate",
            "10m",
            "--keep-runs",
            "144",
            "--keep-bytes",
            "1G",
        ])
        .unwrap();
        assert_eq!(cli.rotate, Some(Duration::from_secs(600)));
        assert_eq!((cli.keep_runs, cli.keep_bytes), (Some(144), Some(1 << 30)));
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

    #[cfg(feature = "analysis")]
    #[test]
    fn the_analysis_commands_are_subcommands() {
        use scalpels_analysis::cli::Analysis;

        let cli =
            Cli::try_parse_from(["scalpels-trace", "flamegraph", "run", "--off-cpu"]).unwrap();
        assert!(matches!(
            cli.analysis,
            Some(Analysis::Flamegraph {
                off_cpu: true,
                run: Some(_),
                diff: None,
                ..
            })
        ));
        let cli =
            Cli::try_parse_from(["scalpels-trace", "flamegraph", "--diff", "a", "b"]).unwrap();
        assert!(matches!(
            cli.analysis,
            Some(Analysis::Flamegraph { run: None, diff: Some(ref sides), .. }) if sides.len() == 2
        ));
        assert!(Cli::try_parse_from(["scalpels-trace", "flamegraph"]).is_err());
        assert!(Cli::try_parse_from(["scalpels-trace", "flamegraph", "--diff", "a"]).is_err());
        assert!(
            Cli::try_parse_from(["scalpels-trace", "flamegraph", "r", "--diff", "a", "b"]).is_err()
        );
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
                "no_tls": false,
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
