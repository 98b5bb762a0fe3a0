//! Getting to the first interval: waiting for a service that is not running yet, spawning the
//! command held at its gate, the first targets and the first manifest.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};

use super::{FOREVER, Session, attach::Attached, signals::Signals};
use crate::{
    clock::utc_now_ns,
    target::{self, Members, ServiceMatch, TargetSpec, spawn::GatedChild},
};

impl Session<'_> {
    /// With a service that was not running at the start: waits for it (see
    /// [`Self::wait_for_service`]), and removes the run's directory if it never came. Whether
    /// the run goes on (`false`: a signal came first).
    pub(super) async fn wait_for_absent_service(
        &mut self,
        attached: &mut Attached,
        signals: &mut Signals,
    ) -> Result<bool> {
        let (TargetSpec::Service(name), None) = (&self.spec, &self.service) else {
            return Ok(true);
        };
        let name = name.clone();
        let waited = self.wait_for_service(&name, attached, signals).await;
        if !matches!(waited, Ok(Some(_))) {
            // The run never began: nothing in its directory is a trace of the service.
            if let Err(e) = std::fs::remove_dir_all(self.run_dir.path()) {
                eprintln!(
                    "scalpels-trace: warning: cannot remove {}: {e}",
                    self.run_dir.path().display()
                );
            }
        }
        let Some(service) = waited? else {
            return Ok(false);
        };
        self.service = Some(service);
        Ok(true)
    }

    /// Waits for a service that was not running at the start, with the tracers attached, so
    /// that it is traced as soon as it is found. `Ok(None)`: a signal came first, and there is
    /// no run.
    async fn wait_for_service(
        &mut self,
        name: &str,
        attached: &mut Attached,
        signals: &mut Signals,
    ) -> Result<Option<ServiceMatch>> {
        let timeout = self.cli.wait_timeout.min(FOREVER);
        let timeout_text = humantime::format_duration(timeout);
        eprintln!(
            "scalpels-trace: waiting for service {name} to start (up to {timeout_text}; --wait-timeout)"
        );
        let deadline = tokio::time::Instant::now() + timeout;
        let mut add_targets = |members: &Members| attached.add_targets(members);
        let signal = tokio::select! {
            signal = signals.first() => signal,
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
    pub(super) fn start(
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
        self.start_manifest(attached, &pids_seen)?;
        if let Some(child) = &mut child {
            child.release()?;
        }
        self.announce();
        Ok((child, members, pids_seen))
    }

    /// Writes the run's first manifest (running), uploaded at once with `--out s3://...`.
    pub(super) fn start_manifest(
        &self,
        attached: &Attached,
        pids_seen: &BTreeSet<u32>,
    ) -> Result<()> {
        self.manifest(attached, pids_seen, &attached.counts(), None)
            .write(&self.run_dir)?;
        if let Some(live) = &self.live {
            live.manifest(self.run_dir.path());
        }
        Ok(())
    }

    /// Says where the run goes, once it is tracing.
    fn announce(&self) {
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
    }

    /// The target's members now (service re-resolution, or the processes being traced).
    pub(super) fn members(&self, attached: &Attached) -> Members {
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
}
