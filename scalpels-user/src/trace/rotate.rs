//! Continuous mode (`--rotate`): the run is closed at an instant and the next one begins at
//! that same instant, with the tracers still attached, so that nothing the kernel counts
//! falls between two runs. Everything drained at the rotation (ring buffers read, in-kernel
//! aggregates collected up to the instant) goes to the closing run; what the kernel sends
//! after goes to the next; so do the counts (losses, kernel time), each run's manifest holding
//! what was counted during it. Old runs are removed past `--keep-runs` and `--keep-bytes`.

use anyhow::{Context as _, Result};

use super::{
    RunPlace, Session,
    attach::Attached,
    counts::Counts,
    event_loop::{Progress, stopped_by},
    keep,
};
use crate::{
    clock::utc_now_ns,
    fleet::live::WriteCheck,
    run::retention::{self, Limits},
    tracer::Interval,
};

/// The end reason of a run closed for the next one.
const ROTATED: &str = "rotated";

impl Session<'_> {
    /// Closes the run now and goes on in the next one. Why tracing ends, if it does (a failure
    /// to drain, or to write the closing run or open the next).
    pub(super) fn rotate(
        &mut self,
        attached: &mut Attached,
        progress: &mut Progress,
    ) -> Option<String> {
        let rotated_ns = utc_now_ns();
        if let Err(e) = drain(attached, progress, rotated_ns) {
            return Some(stopped_by(&mut progress.failure, e));
        }
        // Read once, at the instant as near as can be: what the closing run counted ends here
        // and the next run's begins, so that no count is in both or in neither.
        let counted = attached.counts();
        // The store is not test-written here: an outage at this instant must not end the trace.
        // The next run's uploads are tried file by file; those that fail are counted and the
        // run kept in staging, as for a store that fails mid-run.
        let next = match RunPlace::create(self.cli, &self.spec, rotated_ns, WriteCheck::Skip) {
            Ok(next) => next,
            Err(e) => {
                return Some(stopped_by(
                    &mut progress.failure,
                    e.context("opening the next run"),
                ));
            }
        };
        let tables = attached
            .tracers
            .iter_mut()
            .map(|t| {
                let name = t.name();
                let closing = t.tables().into_iter();
                (
                    name,
                    closing.map(|table| table.rotate(&next.run_dir)).collect(),
                )
            })
            .collect();
        let mut failure = None;
        for t in &mut attached.tracers {
            keep(&mut failure, t.rotated());
        }
        let mut pids_seen =
            std::mem::replace(&mut progress.pids_seen, progress.members.pids.clone());
        for t in &attached.tracers {
            pids_seen.extend(t.processes());
        }
        let mut manifest =
            self.manifest(attached, &pids_seen, &counted, Some((ROTATED, rotated_ns)));
        let uploaded = self.close_run(tables, &mut manifest, &mut failure);
        let closed = self.run_dir.path().to_owned();
        self.go_on_in(next, counted);
        keep(
            &mut failure,
            self.start_manifest(attached, &progress.pids_seen),
        );
        eprintln!(
            "scalpels-trace: run {} closed ({ROTATED}); tracing into {}",
            closed.display(),
            self.run_dir.path().display()
        );
        // A failed upload keeps its run in the staging directory (the error says how to upload
        // it again); tracing goes on.
        if let Some(Err(e)) = uploaded {
            eprintln!("scalpels-trace: warning: {e:#}");
            self.runs_kept += 1;
        }
        keep(&mut failure, self.prune_runs());
        failure.map(|e| stopped_by(&mut progress.failure, e))
    }

    /// The session's run is now `next`'s, traced from its start, and counting from `counted`.
    fn go_on_in(&mut self, next: RunPlace, counted: Counts) {
        self.run_dir = next.run_dir;
        self.run_id = next.run_id;
        self.started_ns = next.started_ns;
        self.traced_ns = next.started_ns;
        self.partition = next.partition;
        self.live = next.live;
        self.counted_before = counted;
    }

    /// Removes this service's oldest closed runs past `--keep-runs` and `--keep-bytes`, from
    /// the directory the runs are written in.
    pub(super) fn prune_runs(&self) -> Result<()> {
        let limits = Limits {
            runs: self.cli.keep_runs,
            bytes: self.cli.keep_bytes,
        };
        if limits.runs.is_none() && limits.bytes.is_none() {
            return Ok(());
        }
        let out = self
            .run_dir
            .path()
            .parent()
            .context("a run directory is in an output directory")?;
        for removed in retention::prune(out, &self.partition.service, limits)? {
            eprintln!(
                "scalpels-trace: removed the old run {} (--keep-runs/--keep-bytes)",
                removed.display()
            );
        }
        Ok(())
    }
}

/// Reads every ring buffer and collects every tracer's aggregates up to `rotated_ns`, the end
/// of the closing run's last interval; the next interval starts there.
fn drain(attached: &mut Attached, progress: &mut Progress, rotated_ns: i64) -> Result<()> {
    let interval = Interval {
        start: progress.interval_start,
        end: rotated_ns,
        pids: &progress.members.pids,
    };
    // As at the end of a run: every tracer reads its ring buffer before any collects, so the
    // events of one that point at another's records (Python stacks) find them.
    for t in &mut attached.tracers {
        t.poll_events(true)?;
    }
    for t in &mut attached.tracers {
        t.poll_events(true)?;
        t.collect_interval(&interval)?;
    }
    progress.interval_start = rotated_ns;
    Ok(())
}
