//! The end of a run: the hooks stopped, the last drain, the tables closed and counted, the
//! final manifest written, the upload finished, and the summary printed.

use std::collections::BTreeSet;

use anyhow::Result;

use super::{Session, attach::Attached, counts::Counts, event_loop::Progress, keep};
use crate::{
    clock::utc_now_ns,
    fleet::uploader::Tally,
    program_stats,
    run::{
        manifest::{self, RunStatus},
        table::TableWriter,
    },
    tracer::Interval,
};

impl Attached {
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
}

impl Session<'_> {
    /// Ends the run that ended for `end_reason`, and reports it; the process exit code, or the
    /// run's first failure.
    pub(super) fn finish(
        &mut self,
        attached: &mut Attached,
        progress: Progress,
        end_reason: &str,
    ) -> Result<u8> {
        let Progress {
            mut child,
            members,
            mut pids_seen,
            interval_start,
            mut failure,
        } = progress;
        let ended_ns = attached.end(&members.pids, interval_start, &mut failure);
        if let Some(child) = &mut child {
            child.reap();
        }
        for t in &attached.tracers {
            pids_seen.extend(t.processes());
        }
        let counted = attached.counts();
        let mut manifest =
            self.manifest(attached, &pids_seen, &counted, Some((end_reason, ended_ns)));
        let summaries: Vec<(&'static str, Vec<String>)> = attached
            .tracers
            .iter()
            .map(|t| (t.name(), t.summary()))
            .collect();
        let tables = std::mem::take(&mut attached.tracers)
            .into_iter()
            .map(|t| (t.name(), t.into_tables()))
            .collect();
        let uploaded = self.close_run(tables, &mut manifest, &mut failure);
        if self.cli.rotate.is_some() {
            keep(&mut failure, self.prune_runs());
        }

        self.print_summary(
            &manifest,
            &counted,
            summaries,
            uploaded.as_ref(),
            end_reason,
        );
        match (failure, uploaded) {
            (Some(e), _) => Err(e.context(format!(
                "the run stopped; what was written before is in {}",
                self.run_dir.path().display()
            ))),
            (None, Some(Err(e))) => Err(e),
            (None, _) => Ok(0),
        }
    }

    /// Closes the run's directory: its tables (each tracer's, by tracer), its final manifest
    /// (failed after a failure), and with `--out s3://...` its upload, waited for; what the
    /// upload came to.
    pub(super) fn close_run(
        &mut self,
        tables: Vec<(&'static str, Vec<TableWriter>)>,
        manifest: &mut manifest::Manifest,
        failure: &mut Option<anyhow::Error>,
    ) -> Option<Result<Tally>> {
        self.close_tables(tables, manifest, failure);
        if let Some(e) = &failure {
            manifest.status = RunStatus::Failed;
            manifest.end_reason = Some(format!("error: {e:#}"));
        }
        if let Some(live) = &self.live {
            match live.record() {
                Ok(record) => manifest.upload = Some(record),
                Err(e) => keep(failure, Err(e)),
            }
        }
        keep(failure, manifest.write(&self.run_dir));
        crate::run::release_room(&self.run_dir);
        self.live.take().map(|live| {
            live.manifest(self.run_dir.path());
            live.finish(self.run_dir.path())
        })
    }

    /// Closes every tracer's tables (merged, or handed to the upload as segments) and counts
    /// in the manifest the rows each has on disk and those a write error kept off it.
    fn close_tables(
        &mut self,
        tables: Vec<(&'static str, Vec<TableWriter>)>,
        manifest: &mut manifest::Manifest,
        failure: &mut Option<anyhow::Error>,
    ) {
        for (tracer, tables) in tables {
            let mut tracer_rows = 0;
            for mut table in tables {
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
            *self.rows_traced.entry(tracer).or_default() += tracer_rows;
        }
    }

    /// What the run was, on standard output: where it went, why it ended, each tracer's rows,
    /// losses and kernel time (the whole trace's, over every rotated run: `counted` is a
    /// reading since the tracers attached), and the tracers' own summaries.
    fn print_summary(
        &self,
        manifest: &manifest::Manifest,
        counted: &Counts,
        summaries: Vec<(&'static str, Vec<String>)>,
        uploaded: Option<&Result<Tally>>,
        end_reason: &str,
    ) {
        self.print_destination(uploaded);
        println!("ended: {end_reason}");
        for record in &manifest.tracers {
            let counts = counted.of(record.name);
            let drops: u64 = counts.drops.values().sum();
            match &record.reason {
                Some(reason) => println!("tracer {}: unavailable: {reason}", record.name),
                None => println!(
                    "tracer {}: {} rows, {drops} dropped",
                    record.name,
                    self.rows_traced.get(record.name).copied().unwrap_or(0)
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
            if let Some(line) = program_stats::summary_line(&counts.programs) {
                println!("{line}");
            }
        }
        if let Some(line) = program_stats::summary_line(&counted.shared_programs) {
            println!("system-call hooks (shared by the tracers above):\n{line}");
        }
        for (name, lines) in summaries {
            println!("{name}:");
            for line in lines {
                println!("{line}");
            }
        }
    }

    /// Where the run went: its directory, or the object store's partition and what was
    /// uploaded there.
    fn print_destination(&self, uploaded: Option<&Result<Tally>>) {
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
                if self.runs_kept > 0 {
                    println!(
                        "runs kept in {} (their uploads failed, see above): {}",
                        self.cli.staging.display(),
                        self.runs_kept
                    );
                }
            }
        }
    }
}
