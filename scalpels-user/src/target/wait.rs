//! Waiting for a service that is not running yet. The tracers are attached before the wait, so
//! that the service is traced as soon as it is found: each process that execs or renames itself
//! is looked at as it does (the kernel's process events, see `execs`), and the host is scanned
//! besides: every second for what events do not show (a process moved into a unit's cgroup
//! without an exec), at once when the kernel dropped events, and every 100 ms on hosts where
//! process events cannot be read.

use std::time::Duration;

use anyhow::Result;
use tokio::time::{Instant, MissedTickBehavior};

use super::{
    Members, ServiceMatch, cgroup,
    execs::{Execs, News},
    find_service, process,
};

/// How often /proc and the cgroup tree are scanned for the service, with process events and
/// without. A scan costs about 15 µs of CPU per process on the host (1.2 ms for 80).
const SCAN_EVERY: Duration = Duration::from_secs(1);
const SCAN_EVERY_WITHOUT_EVENTS: Duration = Duration::from_millis(100);

/// What to look at next.
enum Look {
    /// Everything: the unit's cgroup, every process's name.
    Scan,
    /// Only these processes, which just started.
    Started(Vec<u32>),
}

/// Waits until service `name` runs, or until `deadline` (then `None`). A process found by name
/// as it started is made a target at once (`add_targets`), before the service is resolved any
/// further, so that its next system calls are traced; the caller adds the rest of the service.
pub async fn service(
    name: &str,
    deadline: Instant,
    add_targets: &mut impl FnMut(&Members) -> Result<()>,
) -> Result<Option<ServiceMatch>> {
    let (mut execs, period) = match Execs::subscribe() {
        Ok(execs) => (Some(execs), SCAN_EVERY),
        Err(e) => {
            eprintln!(
                "scalpels-trace: note: {e:#}; looking for service {name} every {} ms instead",
                SCAN_EVERY_WITHOUT_EVENTS.as_millis()
            );
            (None, SCAN_EVERY_WITHOUT_EVENTS)
        }
    };
    // The first tick is at once: a service that started while the tracers were being attached
    // is found now.
    let mut scan = tokio::time::interval(period);
    scan.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let look = tokio::select! {
            () = tokio::time::sleep_until(deadline) => return Ok(None),
            _ = scan.tick() => Look::Scan,
            news = next(execs.as_mut()) => match news? {
                News::Started(pids) => Look::Started(pids),
                News::Lost => Look::Scan,
            },
        };
        match look {
            Look::Scan => {
                if let Some(service) = find_service(name) {
                    return Ok(Some(service));
                }
            }
            Look::Started(pids) => {
                for pid in pids {
                    let named = process::is_called(pid, name);
                    if named {
                        // A target whatever the service resolves as (the kernel matches by pid
                        // and by cgroup while waiting), so in before the cgroup tree is searched.
                        add_targets(&Members {
                            pids: [pid].into(),
                            ..Members::default()
                        })?;
                    } else if !cgroup::in_unit(pid, name) {
                        continue;
                    }
                    // Resolved as a scan would: the unit's cgroup first.
                    let service = cgroup::find_unit(name)
                        .map(ServiceMatch::Cgroup)
                        .or(named.then_some(ServiceMatch::ProcessName));
                    if service.is_some() {
                        return Ok(service);
                    }
                }
            }
        }
    }
}

/// The next process events, or never without a subscription.
async fn next(execs: Option<&mut Execs>) -> Result<News> {
    match execs {
        Some(execs) => execs.next().await,
        None => std::future::pending().await,
    }
}
