//! One tracing run, start to end: resolve the target, load and attach, drain every interval,
//! finish the tables and the manifest.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use aya::EbpfLoader;
use jiff::Timestamp;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracers::{
    catalogue,
    target::{TARGET_CONFIG_GLOBAL, TargetConfig},
};

use crate::{
    cli::Cli,
    clock::{Clock, utc_now_ns},
    counters::Counters,
    ebpf,
    events_ready::EventsReady,
    fleet::{Partition, destination::Location, live::LiveUpload, uploader::Tally},
    hooks::{self, Hooks},
    preflight,
    program_stats::{self, ProgramStats},
    run::{
        SCHEMA_VERSION,
        dir::Dir,
        manifest::{self, RunStatus, TargetKind, TracerStatus},
        pending, run_dir,
    },
    stack_index::StackIndex,
    status::StatusLine,
    target::{self, Members, ServiceMatch, TargetSpec, set::TargetSet, spawn::GatedChild},
    tracefs,
    tracer::{self, Env, Interval, Tracer},
};

/// How often ring buffers are read and overdue row groups closed.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// What a duration that never ends is taken as (136 years: far, and within what timers take).
const FOREVER: Duration = Duration::from_secs(u32::MAX as u64);

/// A tracer that was asked for but could not run, and why.
struct Unavailable {
    name: &'static str,
    reason: String,
}

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

fn rfc3339(utc_ns: i64) -> String {
    Timestamp::from_nanosecond(i128::from(utc_ns))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Runs `scalpels-trace` as the CLI asked; returns the process exit code.
pub fn run(cli: Cli) -> Result<u8> {
    if cli.list_tracers {
        for t in catalogue::TRACERS {
            println!(
                "{:<10} {} (tables: {})",
                t.name,
                t.summary,
                t.tables.join(", ")
            );
        }
        return Ok(0);
    }
    let tracers = selected_tracers(&cli)?;
    preflight::check_privileges()?;
    preflight::raise_memlock_limit();
    let tracefs = tracefs::ensure_mounted()?;

    let spec = spec(&cli);
    let service = match &spec {
        TargetSpec::Service(name) => match target::find_service(name) {
            Some(service) => Some(service),
            None if cli.wait_timeout.is_zero() => return Err(target::unknown_service(name)),
            // Waited for once the tracers are attached (see `Session::trace`).
            None => None,
        },
        TargetSpec::Pids(pids) => {
            target::check_pids(pids)?;
            None
        }
        // Found now, not after seconds of loading the tracers.
        TargetSpec::Command(argv) => {
            target::spawn::resolve(argv.first().context("no command given after --")?)?;
            None
        }
    };

    let started_ns = utc_now_ns();
    let start =
        Timestamp::from_nanosecond(i128::from(started_ns)).context("system clock out of range")?;
    let (root, upload_to) = match &cli.out {
        Location::Dir(dir) => (dir, None),
        Location::S3 { .. } => (&cli.staging, Some(&cli.out)),
    };
    let run_dir = run_dir::create(
        root,
        &run_dir::run_id(start, &label(&spec)),
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
        None => manifest::Host::current().hostname,
    };
    let partition = Partition {
        host: run_dir::file_safe(&host),
        service: run_dir::file_safe(&label(&spec)),
        run: run_id.clone(),
    };
    let live = match upload_to {
        Some(location) => match LiveUpload::start(location, partition.clone()) {
            Ok(live) => Some(live),
            Err(e) => {
                crate::run::release_room(&run_dir);
                let _ = std::fs::remove_dir(run_dir.path());
                return Err(e);
            }
        },
        None => None,
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut session = Session {
        cli: &cli,
        spec,
        service,
        run_dir,
        run_id,
        started_ns,
        traced_ns: started_ns,
        clock: Clock::calibrate(),
        stacks: StackIndex::default(),
        partition,
        live,
    };
    runtime.block_on(session.trace(&tracefs, &tracers))
}

/// The smallest ring buffer the kernel accepts.
fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
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
}

/// Everything attached for a run.
struct Attached {
    tracers: Vec<Box<dyn Tracer>>,
    unavailable: Vec<Unavailable>,
    targets: TargetSet,
    counters: Counters,
    /// With `--bpf-stats`: the kernel times every program while this lives.
    program_stats: Option<ProgramStats>,
    /// The tracers that work through the system-call hooks.
    hooked: Vec<&'static str>,
    hooks: Option<hooks::Switch>,
    /// System calls target threads were in when the run ended (see [`hooks::Switch`]).
    calls_cut_at_end: u64,
    // Programs stay attached while the object lives.
    ebpf: aya::Ebpf,
}

impl Attached {
    /// The tracer's loss counters, with the runs of its programs the kernel skipped.
    /// Ends the run's tracing at the end of the last interval (begun at `interval_start`, of
    /// the targets `pids`): the hooks stop, counting the calls cut, and every tracer drains and
    /// finishes. When it ended (UTC ns).
    fn end(
        &mut self,
        pids: &BTreeSet<u32>,
        interval_start: i64,
        failure: &mut Option<anyhow::Error>,
    ) -> i64 {
        // The run ends here: the hooks stop, and the system calls target threads are in the
        // middle of are counted as cut.
        if let Some(hooks) = &mut self.hooks {
            match hooks.stop(pids) {
                Ok(cut) => self.calls_cut_at_end = cut,
                Err(e) => keep(failure, Err(e)),
            }
        }
        // Last drain: what the kernel holds since the previous interval, for the targets of the
        // last interval (an exited command is still a zombie, readable in /proc, until its caller reaps it).
        let ended_ns = utc_now_ns();
        let interval = Interval {
            start: interval_start,
            end: ended_ns,
            pids,
        };
        // Every tracer reads its ring buffer before any collects, so the events of one that
        // point at another's records (Python stacks) find them. After a failure each step is
        // still tried: whatever can be saved is.
        for t in &mut self.tracers {
            keep(failure, t.poll_events(true));
        }
        for t in &mut self.tracers {
            keep(failure, t.poll_events(true));
            keep(failure, t.collect_interval(&interval));
            keep(failure, t.finish());
        }
        ended_ns
    }

    /// For the status line: each tracer's rows per second since the previous line (whose
    /// counts `last_events` holds, and takes the new ones), and the kernel's drops so far.
    fn rates(&self, last_events: &mut [u64], seconds: f64) -> String {
        let rates: Vec<String> = self
            .tracers
            .iter()
            .zip(last_events)
            .map(|(t, last)| {
                let rate = t.events().saturating_sub(*last) as f64 / seconds;
                *last = t.events();
                format!("{} {rate:.0}/s", t.name())
            })
            .collect();
        let drops: u64 = self
            .tracers
            .iter()
            .flat_map(|t| self.counters.of(t.name()).into_values())
            .sum();
        format!("{}  drops {drops}", rates.join("  "))
    }

    fn drops(&self, tracer: &str) -> BTreeMap<&'static str, u64> {
        let mut drops = self.counters.of(tracer);
        let hooked = self.hooked.contains(&tracer);
        if hooked || catalogue::find(tracer).is_some_and(|info| !info.programs.is_empty()) {
            drops.insert(
                "runs_skipped",
                program_stats::runs_skipped(&self.ebpf, tracer, hooked),
            );
        }
        if tracer == "syscalls" {
            drops.insert("calls_cut_at_end", self.calls_cut_at_end);
        }
        drops
    }

    /// Makes `members` targets; with the hooks, their threads get their state first, so the
    /// system calls they are in the middle of are counted as cut when they return.
    fn add_targets(&mut self, members: &Members) -> Result<()> {
        let hooks = self.hooks.as_ref();
        self.targets.add(members, |pid| {
            hooks.map_or(Ok(()), |hooks| hooks.mark_threads(pid))
        })
    }
}

/// The tracers that work on system calls cannot run without the hooks, which failed (`error`):
/// they move from `prepared` to `unavailable`.
fn without_hooks(
    prepared: &mut Vec<(&'static str, Box<dyn tracer::Prepared>)>,
    unavailable: &mut Vec<Unavailable>,
    error: &anyhow::Error,
    cli: &Cli,
) {
    let reason = format!("system-call hooks: {error:#}");
    prepared.retain(|(name, _)| {
        let hooked = hooks::serves(name, cli);
        if hooked {
            unavailable.push(Unavailable {
                name,
                reason: reason.clone(),
            });
        }
        !hooked
    });
}

impl Session<'_> {
    fn attach(&self, tracefs: &std::path::Path, names: &[&'static str]) -> Result<Attached> {
        let env = Env {
            run_dir: &self.run_dir,
            tracefs,
            clock: self.clock,
            cli: self.cli,
            stacks: &self.stacks,
        };
        let (by_tgid, by_cgroup) = match (&self.spec, &self.service) {
            (_, Some(ServiceMatch::Cgroup(_))) => (false, true),
            // A service not found yet may turn up either way: the kernel matches both.
            (TargetSpec::Service(_), None) => (true, true),
            _ => (true, false),
        };
        let target_config = TargetConfig {
            by_tgid: u32::from(by_tgid),
            by_cgroup: u32::from(by_cgroup),
            fork_child_pid_offset: ebpf::fork_child_pid_offset(tracefs)?,
            loader_tgid: std::process::id(),
            exit_group_dead_offset: ebpf::exit_group_dead_offset(tracefs),
        };
        let mut unavailable = Vec::new();
        let mut prepared = Vec::new();
        for &name in names {
            match tracer::prepare(name, &env) {
                Ok(p) => prepared.push((name, p)),
                Err(e) => unavailable.push(Unavailable {
                    name,
                    reason: format!("{e:#}"),
                }),
            }
        }
        let names: Vec<&str> = prepared.iter().map(|(name, _)| *name).collect();
        let hooks = Hooks::prepare(&names, self.cli).unwrap_or_else(|e| {
            without_hooks(&mut prepared, &mut unavailable, &e, self.cli);
            None
        });
        let mut loader = EbpfLoader::new();
        // aya creates task-storage maps but has no type for them; the kernel side alone uses
        // them.
        loader.allow_unsupported_maps();
        loader.override_global(TARGET_CONFIG_GLOBAL, &target_config, true);
        for info in catalogue::TRACERS {
            if !prepared.iter().any(|(name, _)| *name == info.name) {
                for map in info.maps {
                    loader.map_max_entries(map, 1);
                }
                for ring in info.ring_buffers {
                    loader.map_max_entries(ring, page_size());
                }
            }
        }
        for (_, p) in &prepared {
            p.set_globals(&mut loader);
        }
        if let Some(hooks) = &hooks {
            hooks.set_globals(&mut loader);
        }
        // Enabled before anything is attached, so that every run of every program counts.
        let program_stats = self.cli.bpf_stats.then(ProgramStats::enable).transpose()?;
        let mut ebpf = loader
            .load(ebpf::OBJECT)
            .context("loading the eBPF object into the kernel")?;
        ebpf::attach_target_programs(&mut ebpf)?;
        if let Some(hooks) = &hooks
            && let Err(e) = hooks.attach(&mut ebpf)
        {
            without_hooks(&mut prepared, &mut unavailable, &e, self.cli);
        }
        let mut tracers = Vec::new();
        for (name, p) in prepared {
            match p.attach(&mut ebpf, &env) {
                Ok(t) => tracers.push(t),
                Err(e) => {
                    ebpf::unload_programs(&mut ebpf, name);
                    unavailable.push(Unavailable {
                        name,
                        reason: format!("{e:#}"),
                    });
                }
            }
        }
        let mut hooked = Vec::new();
        let mut switch = None;
        if let Some(hooks) = &hooks {
            hooked = tracers
                .iter()
                .map(|t| t.name())
                .filter(|name| hooks::serves(name, self.cli))
                .collect();
            switch = Some(
                hooks
                    .switch_on(&mut ebpf, &hooked, self.cli)
                    .context("system-call hooks")?,
            );
        }
        if tracers.is_empty() {
            let reasons: Vec<_> = unavailable
                .iter()
                .map(|u| format!("{}: {}", u.name, u.reason))
                .collect();
            bail!("no tracer could attach ({})", reasons.join("; "));
        }
        for u in &unavailable {
            eprintln!(
                "scalpels-trace: warning: tracer {} is unavailable: {}",
                u.name, u.reason
            );
        }
        Ok(Attached {
            tracers,
            unavailable,
            targets: TargetSet::take(&mut ebpf)?,
            counters: Counters::take(&mut ebpf)?,
            program_stats,
            hooked,
            hooks: switch,
            calls_cut_at_end: 0,
            ebpf,
        })
    }

    /// The target's members now (service re-resolution, or the processes being traced).
    fn members(&self, attached: &Attached) -> Members {
        let mut pids = attached.targets.live_processes();
        match (&self.spec, &self.service) {
            (TargetSpec::Service(name), Some(service)) => {
                return target::service_members(service, name);
            }
            (TargetSpec::Pids(asked), _) => {
                pids.extend(
                    asked
                        .iter()
                        .copied()
                        .filter(|&pid| target::process::is_alive(pid)),
                );
            }
            _ => {}
        }
        Members {
            pids,
            ..Members::default()
        }
    }

    fn manifest(
        &self,
        attached: &Attached,
        pids_seen: &BTreeSet<u32>,
        end: Option<(&str, i64)>,
    ) -> manifest::Manifest {
        let mut tables = BTreeMap::new();
        let mut records: Vec<manifest::TracerRecord> = Vec::new();
        for t in &attached.tracers {
            records.push(manifest::TracerRecord {
                name: t.name(),
                status: TracerStatus::Attached,
                reason: None,
                events: t.events(),
                drops: attached.drops(t.name()),
                notes: t.notes(),
                unparsed: t.unparsed(),
                programs: attached
                    .program_stats
                    .as_ref()
                    .map(|stats| stats.of(&attached.ebpf, t.name()))
                    .unwrap_or_default(),
            });
            let info = catalogue::find(t.name()).expect("attached tracers are in the catalogue");
            for table in info.tables {
                tables.insert(
                    table.to_string(),
                    manifest::TableRecord {
                        file: format!("{table}.parquet"),
                        tracer: info.name,
                        rows: 0,
                        rows_lost: 0,
                    },
                );
            }
        }
        records.extend(attached.unavailable.iter().map(|u| manifest::TracerRecord {
            name: u.name,
            status: TracerStatus::Unavailable,
            reason: Some(u.reason.clone()),
            events: 0,
            drops: BTreeMap::new(),
            notes: BTreeMap::new(),
            unparsed: BTreeMap::new(),
            programs: BTreeMap::new(),
        }));
        let (kind, cgroup) = match (&self.spec, &self.service) {
            (TargetSpec::Service(_), Some(ServiceMatch::Cgroup(dir))) => {
                (TargetKind::Service, Some(dir.clone()))
            }
            (TargetSpec::Service(_), _) => (TargetKind::Service, None),
            (TargetSpec::Pids(_), _) => (TargetKind::Pids, None),
            (TargetSpec::Command(_), _) => (TargetKind::Command, None),
        };
        manifest::Manifest {
            schema_version: SCHEMA_VERSION,
            scalpels_version: env!("CARGO_PKG_VERSION"),
            run_id: self.run_id.clone(),
            status: if end.is_some() {
                RunStatus::Complete
            } else {
                RunStatus::Running
            },
            end_reason: end.map(|(reason, _)| reason.to_owned()),
            host: manifest::Host::current(),
            partition: self.partition.clone(),
            // A `-- COMMAND` may carry secrets, as the command lines of proc_stats do.
            command_line: crate::proc::cmdline::stored(
                std::env::args().collect(),
                self.cli.options.proc.keep_cmdline,
            ),
            target: manifest::Target {
                kind,
                service: self.cli.service.clone(),
                resolved_as: self.service.as_ref().map(ServiceMatch::found_by),
                cgroup_id: cgroup.as_ref().and_then(|d| {
                    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(d).ok()?).into()
                }),
                cgroup: cgroup.map(|d| d.display().to_string()),
                command: matches!(self.spec, TargetSpec::Command(_))
                    .then(|| self.cli.command.clone()),
                pids: pids_seen.iter().copied().collect(),
            },
            started_at: rfc3339(self.started_ns),
            traced_from: rfc3339(self.traced_ns),
            ended_at: end.map(|(_, at)| rfc3339(at)),
            options: manifest::Options {
                interval_ns: self.cli.interval.as_nanos() as u64,
                flush_interval_ns: self.cli.flush_interval.as_nanos() as u64,
                bpf_stats: self.cli.bpf_stats,
                tracers: self.cli.options.to_manifest(),
            },
            tracers: records,
            shared_programs: attached
                .program_stats
                .as_ref()
                .map(|stats| stats.shared(&attached.ebpf))
                .unwrap_or_default(),
            tables,
            upload: None,
        }
    }

    /// Waits for a service that was not running at the start, with the tracers attached, so
    /// that it is traced as soon as it is found. `Ok(None)`: a signal came first, and there is
    /// no run.
    async fn wait_for_service(
        &mut self,
        name: &str,
        attached: &mut Attached,
        sigint: &mut Signal,
        sigterm: &mut Signal,
    ) -> Result<Option<ServiceMatch>> {
        let timeout = self.cli.wait_timeout.min(FOREVER);
        let timeout_text = humantime::format_duration(timeout);
        eprintln!(
            "scalpels-trace: waiting for service {name} to start (up to {timeout_text}; --wait-timeout)"
        );
        let deadline = tokio::time::Instant::now() + timeout;
        let mut add_targets = |members: &Members| attached.add_targets(members);
        let signal = tokio::select! {
            _ = sigint.recv() => "SIGINT",
            _ = sigterm.recv() => "SIGTERM",
            found = target::wait::service(name, deadline, &mut add_targets) => {
                return match found.with_context(|| format!("waiting for service {name}"))? {
                    Some(service) => Ok(Some(service)),
                    None => Err(target::unknown_service(name).context(format!(
                        "service {name} did not start within {timeout_text} (--wait-timeout)"
                    ))),
                };
            }
        };
        eprintln!("scalpels-trace: {signal} while waiting for service {name}: nothing was traced");
        Ok(None)
    }

    /// Starts tracing: the tracers begin, the command (if any) is spawned held at its gate,
    /// the targets are set, the first manifest written, and the command let go. The command,
    /// the first targets, and every pid traced so far.
    fn start(
        &mut self,
        attached: &mut Attached,
    ) -> Result<(Option<GatedChild>, Members, BTreeSet<u32>)> {
        for t in &mut attached.tracers {
            t.begin()?;
        }
        let mut child: Option<GatedChild> = None;
        if let TargetSpec::Command(argv) = &self.spec {
            let spawned = target::spawn::spawn_gated(argv)?;
            attached.add_targets(&Members {
                pids: [spawned.pid].into(),
                ..Members::default()
            })?;
            child = Some(spawned);
        }
        let mut pids_seen = BTreeSet::new();
        let members = self.members(attached);
        attached.add_targets(&members)?;
        for t in &mut attached.tracers {
            t.watch(&members.pids);
        }
        pids_seen.extend(&members.pids);
        self.traced_ns = utc_now_ns();
        self.manifest(attached, &pids_seen, None)
            .write(&self.run_dir)?;
        if let Some(live) = &self.live {
            live.manifest(self.run_dir.path());
        }
        if let Some(child) = &mut child {
            child.release()?;
        }
        match &self.live {
            None => eprintln!(
                "scalpels-trace: tracing into {}",
                self.run_dir.path().display()
            ),
            Some(_) => eprintln!(
                "scalpels-trace: tracing into {}, uploaded to {} as it is written",
                self.run_dir.path().display(),
                self.cli.out
            ),
        }
        Ok((child, members, pids_seen))
    }

    /// Closes every tracer's tables (merged, or handed to the upload as segments) and counts
    /// in the manifest the rows each has on disk and those a write error kept off it.
    fn close_tables(
        &mut self,
        tracers: Vec<Box<dyn Tracer>>,
        manifest: &mut manifest::Manifest,
        failure: &mut Option<anyhow::Error>,
    ) {
        for t in tracers {
            let tracer = t.name();
            let mut tracer_rows = 0;
            for mut table in t.into_tables() {
                let name = table.name();
                match &mut self.live {
                    None => keep(failure, table.finish().map(drop)),
                    Some(live) => keep(
                        failure,
                        table
                            .finish_as_segments()
                            .map(|segments| live.segments(name, segments)),
                    ),
                }
                tracer_rows += table.rows();
                if let Some(record) = manifest.tables.get_mut(name) {
                    record.rows = table.rows();
                    record.rows_lost = table.rows_lost();
                }
            }
            // Counted once the tables are closed: rows on disk, not rows meant to be.
            if let Some(record) = manifest.tracers.iter_mut().find(|r| r.name == tracer) {
                record.events = tracer_rows;
            }
        }
    }

    /// What the run was, on standard output: where it went, why it ended, each tracer's rows,
    /// losses and kernel time, and the tracers' own summaries.
    fn print_summary(
        &self,
        manifest: &manifest::Manifest,
        summaries: Vec<(&'static str, Vec<String>)>,
        uploaded: Option<&Result<Tally>>,
        end_reason: &str,
    ) {
        match uploaded {
            None => println!("run: {}", self.run_dir.path().display()),
            Some(tally) => {
                let p = &self.partition;
                println!(
                    "run: {} host={} service={} run={}",
                    self.cli.out, p.host, p.service, p.run
                );
                if let Ok(tally) = tally {
                    println!(
                        "uploaded: {} files, {} bytes (staging copy removed)",
                        tally.objects, tally.bytes
                    );
                }
            }
        }
        println!("ended: {end_reason}");
        for record in &manifest.tracers {
            let drops: u64 = record.drops.values().sum();
            match &record.reason {
                Some(reason) => println!("tracer {}: unavailable: {reason}", record.name),
                None => println!(
                    "tracer {}: {} rows, {drops} dropped",
                    record.name, record.events
                ),
            }
            let lost: Vec<String> = manifest
                .tables
                .iter()
                .filter(|(_, t)| t.tracer == record.name && t.rows_lost > 0)
                .map(|(name, t)| format!("{name} {}", t.rows_lost))
                .collect();
            if !lost.is_empty() {
                println!("  rows lost to write errors: {}", lost.join(", "));
            }
            if let Some(line) = program_stats::summary_line(&record.programs) {
                println!("{line}");
            }
        }
        if let Some(line) = program_stats::summary_line(&manifest.shared_programs) {
            println!("system-call hooks (shared by the tracers above):\n{line}");
        }
        for (name, lines) in summaries {
            println!("{name}:");
            for line in lines {
                println!("{line}");
            }
        }
    }

    async fn trace(&mut self, tracefs: &std::path::Path, names: &[&'static str]) -> Result<u8> {
        let mut attached = self.attach(tracefs, names)?;
        let mut sigint =
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut sigterm =
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        if let (TargetSpec::Service(name), None) = (&self.spec, &self.service) {
            let name = name.clone();
            let waited = self
                .wait_for_service(&name, &mut attached, &mut sigint, &mut sigterm)
                .await;
            if !matches!(waited, Ok(Some(_))) {
                // The run never began: nothing in its directory is a trace of the service.
                if let Err(e) = std::fs::remove_dir_all(self.run_dir.path()) {
                    eprintln!(
                        "scalpels-trace: warning: cannot remove {}: {e}",
                        self.run_dir.path().display()
                    );
                }
            }
            match waited? {
                Some(service) => self.service = Some(service),
                // Interrupted: ended as asked, like a run that a signal ends.
                None => return Ok(0),
            }
        }
        let (mut child, mut members, mut pids_seen) = self.start(&mut attached)?;

        let deadline = tokio::time::sleep(self.cli.duration.unwrap_or(FOREVER));
        tokio::pin!(deadline);
        let sources: Vec<_> = attached
            .tracers
            .iter()
            .filter_map(|t| t.event_source())
            .collect();
        let events_ready = EventsReady::new(&sources)?;
        drop(sources);
        let mut poll = tokio::time::interval(POLL_EVERY);
        let write_every = pending::write_every(self.cli.flush_interval);
        let mut last_write = Instant::now();
        let mut collect = tokio::time::interval(self.cli.interval);
        collect.tick().await;
        let mut status = StatusLine::new();
        let began = Instant::now();
        let mut interval_start = utc_now_ns();
        // Rows each tracer had produced at the previous status line.
        let mut last_events = vec![0u64; attached.tracers.len()];

        // A failure mid-run (a full disk) ends the run like a signal would: what was written
        // is kept, and the end is recorded, as far as the failure allows.
        let mut failure: Option<anyhow::Error> = None;
        let end_reason = loop {
            tokio::select! {
                _ = sigint.recv() => break "SIGINT".to_owned(),
                _ = sigterm.recv() => break "SIGTERM".to_owned(),
                _ = &mut deadline, if self.cli.duration.is_some() => break "duration".to_owned(),
                ready = events_ready.wait() => {
                    if let Err(e) = ready.and_then(|()| poll_all(&mut attached.tracers, None, None)) {
                        break stopped_by(&mut failure, e);
                    }
                }
                _ = poll.tick() => {
                    let due = last_write.elapsed() >= write_every;
                    if due {
                        last_write = Instant::now();
                    }
                    if let Err(e) = poll_all(&mut attached.tracers, Some(due), self.live.as_mut()) {
                        break stopped_by(&mut failure, e);
                    }
                    if let Some(code) = child.as_mut().and_then(GatedChild::try_wait) {
                        break format!("command exited with status {code}");
                    }
                }
                _ = collect.tick() => {
                    let now = utc_now_ns();
                    members = self.members(&attached);
                    if let Err(e) = attached.add_targets(&members) {
                        break stopped_by(&mut failure, e);
                    }
                    for t in &mut attached.tracers {
                        t.watch(&members.pids);
                    }
                    pids_seen.extend(&members.pids);
                    let interval = Interval { start: interval_start, end: now, pids: &members.pids };
                    if let Err(e) = attached.tracers.iter_mut().try_for_each(|t| t.collect_interval(&interval)) {
                        break stopped_by(&mut failure, e);
                    }
                    interval_start = now;
                    if matches!(self.spec, TargetSpec::Pids(_)) && members.pids.is_empty() {
                        break "targets exited".to_owned();
                    }
                    let seconds = self.cli.interval.as_secs_f64();
                    let rates = attached.rates(&mut last_events, seconds);
                    let waiting = if members.pids.is_empty() { "  (waiting for the service)" } else { "" };
                    status.show(&format!(
                        "scalpels {:>5.0}s  targets {}  {rates}{waiting}",
                        began.elapsed().as_secs_f64(),
                        members.pids.len(),
                    ));
                }
            }
        };
        status.clear();

        let ended_ns = attached.end(&members.pids, interval_start, &mut failure);
        if let Some(child) = &mut child {
            child.reap();
        }
        for t in &attached.tracers {
            pids_seen.extend(t.processes());
        }
        let mut manifest = self.manifest(&attached, &pids_seen, Some((&end_reason, ended_ns)));
        let summaries: Vec<(&'static str, Vec<String>)> = attached
            .tracers
            .iter()
            .map(|t| (t.name(), t.summary()))
            .collect();
        let tracers = std::mem::take(&mut attached.tracers);
        self.close_tables(tracers, &mut manifest, &mut failure);
        if let Some(e) = &failure {
            manifest.status = RunStatus::Failed;
            manifest.end_reason = Some(format!("error: {e:#}"));
        }
        if let Some(live) = &self.live {
            match live.record() {
                Ok(record) => manifest.upload = Some(record),
                Err(e) => keep(&mut failure, Err(e)),
            }
        }
        keep(&mut failure, manifest.write(&self.run_dir));
        crate::run::release_room(&self.run_dir);
        let uploaded = self.live.take().map(|live| {
            live.manifest(self.run_dir.path());
            live.finish(self.run_dir.path())
        });

        self.print_summary(&manifest, summaries, uploaded.as_ref(), &end_reason);
        match (failure, uploaded) {
            (Some(e), _) => Err(e.context(format!(
                "the run stopped; what was written before is in {}",
                self.run_dir.path().display()
            ))),
            (None, Some(Err(e))) => Err(e),
            (None, _) => Ok(0),
        }
    }
}

/// Reads every tracer's ring buffer. On the poll tick (`tick` is `Some(due)`), writes the
/// gathered rows when `due` and closes the segments that are due (and queues their upload when
/// the run goes to an object store).
fn poll_all(
    tracers: &mut [Box<dyn Tracer>],
    tick: Option<bool>,
    mut live: Option<&mut LiveUpload>,
) -> Result<()> {
    for t in tracers {
        t.poll_events(tick == Some(true))?;
        if tick.is_some() {
            for table in t.tables() {
                table.flush_if_due()?;
                if let Some(live) = live.as_deref_mut() {
                    live.closed_segments(table);
                }
            }
        }
    }
    Ok(())
}

/// Keeps the first failure of the steps that end a run.
fn keep(failure: &mut Option<anyhow::Error>, result: Result<()>) {
    if let Err(e) = result {
        failure.get_or_insert(e);
    }
}

/// Records why the run stops early and names the end.
fn stopped_by(failure: &mut Option<anyhow::Error>, e: anyhow::Error) -> String {
    let reason = format!("error: {e:#}");
    *failure = Some(e);
    reason
}
