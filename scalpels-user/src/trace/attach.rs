//! Loading the eBPF object and attaching the tracers: each tracer is prepared, the object is
//! loaded with their globals, and each is attached; one that cannot run is reported
//! unavailable, and the run goes on without it as long as one tracer attached.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use aya::EbpfLoader;
use tracers::{
    catalogue,
    target::{TARGET_CONFIG_GLOBAL, TargetConfig},
};

use super::Session;
use crate::{
    cli::Cli,
    counters::Counters,
    ebpf,
    hooks::{self, Hooks},
    program_stats::{self, ProgramStats},
    target::{Members, ServiceMatch, TargetSpec, set::TargetSet},
    tracer::{self, Env, Tracer},
};

/// A tracer that was asked for but could not run, and why.
pub(super) struct Unavailable {
    pub(super) name: &'static str,
    pub(super) reason: String,
}

/// The tracers prepared to attach, by name.
type PreparedTracers = Vec<(&'static str, Box<dyn tracer::Prepared>)>;

/// Everything attached for a run.
pub(super) struct Attached {
    pub(super) tracers: Vec<Box<dyn Tracer>>,
    pub(super) unavailable: Vec<Unavailable>,
    pub(super) targets: TargetSet,
    pub(super) counters: Counters,
    /// With `--bpf-stats`: the kernel times every program while this lives.
    pub(super) program_stats: Option<ProgramStats>,
    /// The tracers that work through the system-call hooks.
    pub(super) hooked: Vec<&'static str>,
    pub(super) hooks: Option<hooks::Switch>,
    /// System calls target threads were in when the run ended (see [`hooks::Switch`]).
    pub(super) calls_cut_at_end: u64,
    // Programs stay attached while the object lives.
    pub(super) ebpf: aya::Ebpf,
}

impl Attached {
    /// The tracer's loss counters, with the runs of its programs the kernel skipped.
    pub(super) fn drops(&self, tracer: &str) -> BTreeMap<&'static str, u64> {
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
    pub(super) fn add_targets(&mut self, members: &Members) -> Result<()> {
        let hooks = self.hooks.as_ref();
        self.targets.add(members, |pid| {
            hooks.map_or(Ok(()), |hooks| hooks.mark_threads(pid))
        })
    }
}

impl Session<'_> {
    pub(super) fn attach(
        &self,
        tracefs: &std::path::Path,
        names: &[&'static str],
    ) -> Result<Attached> {
        let env = Env {
            run_dir: &self.run_dir,
            tracefs,
            clock: self.clock,
            cli: self.cli,
            stacks: &self.stacks,
        };
        let target_config = self.target_config(tracefs)?;
        let mut unavailable = Vec::new();
        let mut prepared = prepare(names, &env, &mut unavailable);
        let names: Vec<&str> = prepared.iter().map(|(name, _)| *name).collect();
        let hooks = Hooks::prepare(&names, self.cli).unwrap_or_else(|e| {
            without_hooks(&mut prepared, &mut unavailable, &e, self.cli);
            None
        });
        let mut loader = loader(&prepared, hooks.as_ref(), &target_config);
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
        let tracers = attach_prepared(prepared, &mut ebpf, &env, &mut unavailable);
        let hooked = match &hooks {
            Some(_) => hooked(&tracers, self.cli),
            None => Vec::new(),
        };
        let switch = hooks
            .as_ref()
            .map(|hooks| hooks.switch_on(&mut ebpf, &hooked, self.cli))
            .transpose()
            .context("system-call hooks")?;
        report_unavailable(&tracers, &unavailable)?;
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

    /// How the kernel side tells a target: by process, by cgroup (a service found in its own
    /// cgroup), or both.
    fn target_config(&self, tracefs: &std::path::Path) -> Result<TargetConfig> {
        let (by_tgid, by_cgroup) = match (&self.spec, &self.service) {
            (_, Some(ServiceMatch::Cgroup(_))) => (false, true),
            // A service not found yet may turn up either way: the kernel matches both.
            (TargetSpec::Service(_), None) => (true, true),
            _ => (true, false),
        };
        Ok(TargetConfig {
            by_tgid: u32::from(by_tgid),
            by_cgroup: u32::from(by_cgroup),
            fork_child_pid_offset: ebpf::fork_child_pid_offset(tracefs)?,
            loader_tgid: std::process::id(),
            exit_group_dead_offset: ebpf::exit_group_dead_offset(tracefs),
        })
    }
}

/// Prepares each tracer named; those that cannot run go to `unavailable`.
fn prepare(
    names: &[&'static str],
    env: &Env,
    unavailable: &mut Vec<Unavailable>,
) -> PreparedTracers {
    let mut prepared = Vec::new();
    for &name in names {
        match tracer::prepare(name, env) {
            Ok(p) => prepared.push((name, p)),
            Err(e) => unavailable.push(Unavailable {
                name,
                reason: format!("{e:#}"),
            }),
        }
    }
    prepared
}

/// The smallest ring buffer the kernel accepts.
fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// The loader of the eBPF object, with the globals of the prepared tracers and the hooks.
fn loader<'a>(
    prepared: &'a PreparedTracers,
    hooks: Option<&'a Hooks>,
    target_config: &'a TargetConfig,
) -> EbpfLoader<'a> {
    let mut loader = EbpfLoader::new();
    // aya creates task-storage maps but has no type for them; the kernel side alone uses
    // them.
    loader.allow_unsupported_maps();
    loader.override_global(TARGET_CONFIG_GLOBAL, target_config, true);
    // The maps of the tracers that do not run are made as small as the kernel allows: they
    // are created all the same, with the object.
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
    for (_, p) in prepared {
        p.set_globals(&mut loader);
    }
    if let Some(hooks) = hooks {
        hooks.set_globals(&mut loader);
    }
    loader
}

/// Attaches each prepared tracer; one that fails has its programs unloaded and goes to
/// `unavailable`.
fn attach_prepared(
    prepared: PreparedTracers,
    ebpf: &mut aya::Ebpf,
    env: &Env,
    unavailable: &mut Vec<Unavailable>,
) -> Vec<Box<dyn Tracer>> {
    let mut tracers = Vec::new();
    for (name, p) in prepared {
        match p.attach(ebpf, env) {
            Ok(t) => tracers.push(t),
            Err(e) => {
                ebpf::unload_programs(ebpf, name);
                unavailable.push(Unavailable {
                    name,
                    reason: format!("{e:#}"),
                });
            }
        }
    }
    tracers
}

/// The attached tracers that work through the system-call hooks.
fn hooked(tracers: &[Box<dyn Tracer>], cli: &Cli) -> Vec<&'static str> {
    tracers
        .iter()
        .map(|t| t.name())
        .filter(|name| hooks::serves(name, cli))
        .collect()
}

/// The tracers that work on system calls cannot run without the hooks, which failed (`error`):
/// they move from `prepared` to `unavailable`.
fn without_hooks(
    prepared: &mut PreparedTracers,
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

/// Fails the run when no tracer attached, with every reason; otherwise warns of each tracer
/// that did not.
fn report_unavailable(tracers: &[Box<dyn Tracer>], unavailable: &[Unavailable]) -> Result<()> {
    if tracers.is_empty() {
        let reasons: Vec<_> = unavailable
            .iter()
            .map(|u| format!("{}: {}", u.name, u.reason))
            .collect();
        bail!("no tracer could attach ({})", reasons.join("; "));
    }
    for u in unavailable {
        eprintln!(
            "scalpels-trace: warning: tracer {} is unavailable: {}",
            u.name, u.reason
        );
    }
    Ok(())
}
