//! One tracing run, start to end: resolve the target, load and attach (`attach`), wait for a
//! service and start (`start`), drain every interval (`event_loop`), finish the tables and the
//! manifest (`finish`, `manifest`).

mod attach;
mod counts;
mod event_loop;
mod finish;
mod manifest;
mod rotate;
mod signals;
mod start;

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context as _, Result};
use jiff::Timestamp;
use tracers::catalogue;

use crate::{
    cli::Cli,
    clock::{Clock, utc_now_ns},
    fleet::{
        Partition,
        destination::Location,
        live::{LiveUpload, WriteCheck},
    },
    preflight,
    run::{dir::Dir, manifest::Host, run_dir},
    stack_index::StackIndex,
    target::{self, ServiceMatch, TargetSpec},
    tracefs,
};

use self::{
    counts::Counts,
    event_loop::{EventLoop, Progress},
    signals::Signals,
};

/// What a duration that never ends is taken as (136 years: far, and within what timers take).
const FOREVER: Duration = Duration::from_secs(u32::MAX as u64);

fn selected_tracers(cli: &Cli) -> Result<Vec<&'static str>> {
    if cli.tracers.is_empty() {
        return Ok(catalogue::TRACERS.iter().map(|t| t.name).collect());
    }
    let mut selected = Vec::new();
    for name in &cli.tracers {
        let tracer = catalogue::find(name).map(|t| t.name).with_context(|| {
            let known: Vec<_> = catalogue::TRACERS.iter().map(|t| t.name).collect();
            format!("unknown tracer {name:?} (available: {})", known.join(", "))
        })?;
        // A tracer named twice runs once.
        if !selected.contains(&tracer) {
            selected.push(tracer);
        }
    }
    Ok(selected)
}

fn spec(cli: &Cli) -> TargetSpec {
    if let Some(service) = &cli.service {
        TargetSpec::Service(service.clone())
    } else if !cli.pid.is_empty() {
        TargetSpec::Pids(cli.pid.clone())
    } else {
        TargetSpec::Command(cli.command.clone())
    }
}

fn label(spec: &TargetSpec) -> String {
    match spec {
        TargetSpec::Service(name) => name.clone(),
        TargetSpec::Pids(pids) => format!("pid-{}", pids[0]),
        TargetSpec::Command(argv) => argv[0].rsplit('/').next().unwrap_or("command").to_owned(),
    }
}

/// `--list-tracers`: each tracer, what it does, and its tables.
fn print_tracers() {
    for t in catalogue::TRACERS {
        println!(
            "{:<10} {} (tables: {})",
            t.name,
            t.summary,
            t.tables.join(", ")
        );
    }
}

/// Checks the target before anything is loaded, so that a typo fails at once and not after
/// seconds of loading the tracers. The service, when it runs already.
fn check_target(cli: &Cli, spec: &TargetSpec) -> Result<Option<ServiceMatch>> {
    match spec {
        TargetSpec::Service(name) => match target::find_service(name) {
            Some(service) => Ok(Some(service)),
            None if cli.wait_timeout.is_zero() => Err(target::unknown_service(name)),
            // Waited for once the tracers are attached (see `Session::trace`).
            None => Ok(None),
        },
        TargetSpec::Pids(pids) => {
            target::check_pids(pids)?;
            Ok(None)
        }
        TargetSpec::Command(argv) => {
            target::spawn::resolve(argv.first().context("no command given after --")?)?;
            Ok(None)
        }
    }
}

/// Runs `scalpels-trace` as the CLI asked; returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    if cli.list_tracers {
        print_tracers();
        return Ok(0);
    }
    let tracers = selected_tracers(&cli)?;
    preflight::check_privileges()?;
    preflight::raise_memlock_limit();
    let tracefs = tracefs::ensure_mounted()?;

    let spec = spec(&cli);
    let service = check_target(&cli, &spec)?;
    let place = RunPlace::create(&cli, &spec, utc_now_ns(), WriteCheck::Probe)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut session = Session {
        cli: &cli,
        spec,
        service,
        run_dir: place.run_dir,
        run_id: place.run_id,
        started_ns: place.started_ns,
        traced_ns: place.started_ns,
        clock: Clock::calibrate(),
        stacks: StackIndex::default(),
        partition: place.partition,
        live: place.live,
        counted_before: Counts::default(),
        rows_traced: BTreeMap::new(),
        runs_kept: 0,
    };
    runtime.block_on(session.trace(&tracefs, &tracers))
}

/// Where a run's files go: its directory, named after the start and the target, and with
/// `--out s3://...` the upload that follows them. Continuous mode (`--rotate`) has one after
/// the other.
struct RunPlace {
    run_dir: Dir,
    run_id: String,
    started_ns: i64,
    partition: Partition,
    live: Option<LiveUpload>,
}

impl RunPlace {
    /// The place of a run that starts at `started_ns` (UTC); `check` says whether an object
    /// store must take a test write first.
    fn create(cli: &Cli, spec: &TargetSpec, started_ns: i64, check: WriteCheck) -> Result<Self> {
        let start = Timestamp::from_nanosecond(i128::from(started_ns))
            .context("system clock out of range")?;
        let (root, upload_to) = match &cli.out {
            Location::Dir(dir) => (dir, None),
            Location::S3 { .. } => (&cli.staging, Some(&cli.out)),
        };
        let run_dir = run_dir::create(
            root,
            &run_dir::run_id(start, &label(spec)),
            cli.allow_shared_out,
        )?;
        // The directory's name, which has a suffix when a run of the same second exists.
        let run_id = run_dir
            .path()
            .file_name()
            .context("a run directory has a name")?
            .to_string_lossy()
            .into_owned();
        let host = match &cli.host_label {
            Some(label) => label.clone(),
            None => Host::current().hostname,
        };
        let partition = Partition {
            host: run_dir::file_safe(&host),
            service: run_dir::file_safe(&label(spec)),
            run: run_id.clone(),
        };
        let live = match upload_to {
            Some(location) => match LiveUpload::start(location, partition.clone(), check) {
                Ok(live) => Some(live),
                Err(e) => {
                    // No run came of it: the directory is not left behind.
                    crate::run::release_room(&run_dir);
                    let _ = std::fs::remove_dir(run_dir.path());
                    return Err(e);
                }
            },
            None => None,
        };
        Ok(Self {
            run_dir,
            run_id,
            started_ns,
            partition,
            live,
        })
    }
}

struct Session<'a> {
    cli: &'a Cli,
    spec: TargetSpec,
    /// `None` for a service until it is found.
    service: Option<ServiceMatch>,
    run_dir: Dir,
    run_id: String,
    started_ns: i64,
    /// Set once the tracers are attached and the targets known.
    traced_ns: i64,
    clock: Clock,
    stacks: StackIndex,
    partition: Partition,
    /// With `--out s3://...`: the uploads of the run's files as they are complete.
    live: Option<LiveUpload>,
    /// What had been counted since the tracers attached when this run began (nothing but for
    /// the runs after a rotation): the run's manifest counts what came after.
    counted_before: Counts,
    /// The rows each tracer wrote in the runs closed so far, for the summary of the whole trace.
    rows_traced: BTreeMap<&'static str, u64>,
    /// The runs closed at a rotation whose uploads failed (kept in `--staging`), for the summary.
    runs_kept: u64,
}

impl Session<'_> {
    /// The run: attach, wait for the service if it is not up yet, start, loop until the end,
    /// finish. The process exit code.
    async fn trace(&mut self, tracefs: &std::path::Path, names: &[&'static str]) -> Result<u8> {
        let mut attached = self.attach(tracefs, names)?;
        let mut signals = Signals::install()?;
        if !self
            .wait_for_absent_service(&mut attached, &mut signals)
            .await?
        {
            // Interrupted: ended as asked, like a run that a signal ends.
            return Ok(0);
        }
        let (child, members, pids_seen) = self.start(&mut attached)?;
        let mut event_loop = EventLoop::new(self.cli, &attached).await?;
        let mut progress = Progress {
            child,
            members,
            pids_seen,
            interval_start: utc_now_ns(),
            failure: None,
        };
        let end_reason = self
            .run_loop(&mut attached, &mut signals, &mut event_loop, &mut progress)
            .await;
        self.finish(&mut attached, progress, &end_reason)
    }
}

/// Keeps the first failure of the steps that end a run.
fn keep(failure: &mut Option<anyhow::Error>, result: Result<()>) {
    if let Err(e) = result {
        failure.get_or_insert(e);
    }
}
