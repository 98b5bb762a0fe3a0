//! The run's event loop: ring buffers read as they fill, rows written and segments closed on
//! the poll tick, every interval the targets refreshed, collected and the status line shown,
//! until a signal, the duration, the command's exit, the targets' exit or a failure ends it.

use std::{
    collections::BTreeSet,
    pin::Pin,
    time::{Duration, Instant},
};

use anyhow::Result;
use tokio::time::{MissedTickBehavior, Sleep};

use super::{FOREVER, Session, attach::Attached, signals::Signals};
use crate::{
    cli::Cli,
    clock::utc_now_ns,
    events_ready::EventsReady,
    fleet::live::LiveUpload,
    run::pending,
    status::StatusLine,
    target::{Members, TargetSpec, spawn::GatedChild},
    tracer::{Interval, Tracer},
};

/// How often ring buffers are read and overdue row groups closed.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The tracing in progress: what the loop changes, and the end of the run reads.
pub(super) struct Progress {
    /// The command traced, if any: held until the end reaps it.
    pub(super) child: Option<GatedChild>,
    /// The targets of the current interval.
    pub(super) members: Members,
    /// Every pid traced so far.
    pub(super) pids_seen: BTreeSet<u32>,
    /// When the current interval began (UTC ns).
    pub(super) interval_start: i64,
    /// A failure mid-run (a full disk) ends the run like a signal would: what was written is
    /// kept, and the end is recorded, as far as the failure allows.
    pub(super) failure: Option<anyhow::Error>,
}

/// What the loop wakes on, and the status line it keeps.
pub(super) struct EventLoop {
    /// Ends the run after `--duration`.
    deadline: Pin<Box<Sleep>>,
    /// Ready when a tracer's ring buffer has events.
    events_ready: EventsReady,
    poll: tokio::time::Interval,
    /// Gathered rows are written at most this often (`--flush-interval`).
    write_every: Duration,
    last_write: Instant,
    /// Every `--interval`: targets refreshed, intervals collected, the status line shown.
    collect: tokio::time::Interval,
    /// Every `--rotate`: the run closed and the next one begun.
    rotate: Option<tokio::time::Interval>,
    status: StatusLine,
    began: Instant,
    /// Rows each tracer had produced at the previous status line.
    last_events: Vec<u64>,
}

impl EventLoop {
    /// The loop's clocks, started now; returns once the first interval has begun.
    pub(super) async fn new(cli: &Cli, attached: &Attached) -> Result<Self> {
        let deadline = Box::pin(tokio::time::sleep(cli.duration.unwrap_or(FOREVER)));
        let sources: Vec<_> = attached
            .tracers
            .iter()
            .filter_map(|t| t.event_source())
            .collect();
        let events_ready = EventsReady::new(&sources)?;
        drop(sources);
        let poll = tokio::time::interval(POLL_EVERY);
        let write_every = pending::write_every(cli.flush_interval);
        let last_write = Instant::now();
        let mut collect = tokio::time::interval(cli.interval);
        // An interval's first tick is at once: the first collection is one interval away.
        collect.tick().await;
        let mut rotate = cli.rotate.map(tokio::time::interval);
        if let Some(rotate) = &mut rotate {
            // A rotation that is late (a slow close) moves the next ones, never hurries them.
            rotate.set_missed_tick_behavior(MissedTickBehavior::Delay);
            rotate.tick().await;
        }
        Ok(Self {
            deadline,
            events_ready,
            poll,
            write_every,
            last_write,
            collect,
            rotate,
            status: StatusLine::new(),
            began: Instant::now(),
            last_events: vec![0u64; attached.tracers.len()],
        })
    }
}

impl Session<'_> {
    /// Traces until the run ends; why it ended.
    pub(super) async fn run_loop(
        &mut self,
        attached: &mut Attached,
        signals: &mut Signals,
        event_loop: &mut EventLoop,
        progress: &mut Progress,
    ) -> String {
        let end_reason = loop {
            let end = tokio::select! {
                signal = signals.first() => Some(signal.to_owned()),
                _ = &mut event_loop.deadline, if self.cli.duration.is_some() => {
                    Some("duration".to_owned())
                }
                ready = event_loop.events_ready.wait() => ready
                    .and_then(|()| poll_all(&mut attached.tracers, None, None))
                    .err()
                    .map(|e| stopped_by(&mut progress.failure, e)),
                _ = event_loop.poll.tick() => self.on_poll_tick(attached, event_loop, progress),
                _ = event_loop.collect.tick() => {
                    self.on_collect_tick(attached, event_loop, progress)
                }
                _ = next_rotation(&mut event_loop.rotate) => self.rotate(attached, progress),
            };
            if let Some(end_reason) = end {
                break end_reason;
            }
        };
        event_loop.status.clear();
        end_reason
    }

    /// Reads the ring buffers, writes the gathered rows when due, and checks on the command.
    /// Why the run ends, if it does.
    fn on_poll_tick(
        &mut self,
        attached: &mut Attached,
        event_loop: &mut EventLoop,
        progress: &mut Progress,
    ) -> Option<String> {
        let due = event_loop.last_write.elapsed() >= event_loop.write_every;
        if due {
            event_loop.last_write = Instant::now();
        }
        if let Err(e) = poll_all(&mut attached.tracers, Some(due), self.live.as_mut()) {
            return Some(stopped_by(&mut progress.failure, e));
        }
        let code = progress.child.as_mut().and_then(GatedChild::try_wait)?;
        Some(format!("command exited with status {code}"))
    }

    /// Ends an interval: the targets refreshed, every tracer collects, the status line shown.
    /// Why the run ends, if it does.
    fn on_collect_tick(
        &mut self,
        attached: &mut Attached,
        event_loop: &mut EventLoop,
        progress: &mut Progress,
    ) -> Option<String> {
        let now = utc_now_ns();
        progress.members = self.members(attached);
        let members = &progress.members;
        if let Err(e) = attached.add_targets(members) {
            return Some(stopped_by(&mut progress.failure, e));
        }
        for t in &mut attached.tracers {
            t.watch(&members.pids);
        }
        progress.pids_seen.extend(&members.pids);
        let interval = Interval {
            start: progress.interval_start,
            end: now,
            pids: &members.pids,
        };
        let collected = attached
            .tracers
            .iter_mut()
            .try_for_each(|t| t.collect_interval(&interval));
        if let Err(e) = collected {
            return Some(stopped_by(&mut progress.failure, e));
        }
        progress.interval_start = now;
        if matches!(self.spec, TargetSpec::Pids(_)) && members.pids.is_empty() {
            return Some("targets exited".to_owned());
        }
        self.show_status(attached, event_loop, members);
        None
    }

    fn show_status(&self, attached: &Attached, event_loop: &mut EventLoop, members: &Members) {
        let seconds = self.cli.interval.as_secs_f64();
        let rates = attached.rates(&mut event_loop.last_events, seconds);
        let waiting = if members.pids.is_empty() {
            "  (waiting for the service)"
        } else {
            ""
        };
        event_loop.status.show(&format!(
            "scalpels {:>5.0}s  targets {}  {rates}{waiting}",
            event_loop.began.elapsed().as_secs_f64(),
            members.pids.len(),
        ));
    }
}

impl Attached {
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

/// The next `--rotate` tick; never without the option.
async fn next_rotation(rotate: &mut Option<tokio::time::Interval>) {
    match rotate {
        Some(rotate) => {
            rotate.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Records why the run stops early and names the end.
pub(super) fn stopped_by(failure: &mut Option<anyhow::Error>, e: anyhow::Error) -> String {
    let reason = format!("error: {e:#}");
    *failure = Some(e);
    reason
}
