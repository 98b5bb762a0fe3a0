//! What to trace: a service (systemd unit cgroup, else processes by name), pids, or a command
//! started by scalpels-trace. Userspace resolves targets and re-resolves them every interval; the
//! kernel follows forks in between (see `scalpels-ebpf/src/target.rs`). A service that is not
//! running yet is waited for (`wait`).

pub mod cgroup;
mod execs;
pub mod process;
pub mod set;
pub mod spawn;
pub mod wait;

use std::{collections::BTreeSet, path::PathBuf};

use anyhow::{Result, anyhow, bail};

use crate::run::manifest::ServiceFoundBy;

/// What the user asked to trace.
#[derive(Clone, Debug)]
pub enum TargetSpec {
    Service(String),
    Pids(Vec<u32>),
    Command(Vec<String>),
}

/// How a service name was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceMatch {
    /// A systemd unit's cgroup v2 directory: the kernel filters by cgroup id.
    Cgroup(PathBuf),
    /// Processes whose name or command line matches: the kernel filters by process id.
    ProcessName,
}

impl ServiceMatch {
    pub fn found_by(&self) -> ServiceFoundBy {
        match self {
            ServiceMatch::Cgroup(_) => ServiceFoundBy::SystemdUnitCgroup,
            ServiceMatch::ProcessName => ServiceFoundBy::ProcessName,
        }
    }
}

/// The current members of a target: cgroup ids to filter on and processes to trace.
#[derive(Clone, Debug, Default)]
pub struct Members {
    pub cgroup_ids: BTreeSet<u64>,
    pub pids: BTreeSet<u32>,
}

/// How service `name` can be traced now, if it runs: its unit cgroup first, then processes by
/// name.
pub fn find_service(name: &str) -> Option<ServiceMatch> {
    if let Some(dir) = cgroup::find_unit(name) {
        return Some(ServiceMatch::Cgroup(dir));
    }
    (!process::find_by_name(name).is_empty()).then_some(ServiceMatch::ProcessName)
}

/// Service `name` is not on this host: the error lists the closest names this host has.
pub fn unknown_service(name: &str) -> anyhow::Error {
    let mut candidates = process::names();
    candidates.extend(cgroup::unit_names());
    let suggestions = closest(name, &candidates);
    if suggestions.is_empty() {
        return anyhow!(
            "unknown service {name:?}: no systemd unit or running process has that name"
        );
    }
    anyhow!(
        "unknown service {name:?}: no systemd unit or running process has that name; close matches: {}",
        suggestions.join(", ")
    )
}

/// The members of a service now (empty while it is stopped).
pub fn service_members(service: &ServiceMatch, name: &str) -> Members {
    match service {
        ServiceMatch::Cgroup(dir) => cgroup::members(dir),
        ServiceMatch::ProcessName => Members {
            pids: process::find_by_name(name),
            ..Members::default()
        },
    }
}

/// Checks that every pid names a live process.
pub fn check_pids(pids: &[u32]) -> Result<()> {
    for &pid in pids {
        if !process::is_alive(pid) {
            bail!("no process with pid {pid} (it may have exited)");
        }
    }
    Ok(())
}

/// Up to five candidates most similar to `name`, best first.
fn closest(name: &str, candidates: &BTreeSet<String>) -> Vec<String> {
    let mut scored: Vec<(f64, &String)> = candidates
        .iter()
        .map(|c| {
            let mut score = strsim::jaro_winkler(name, c);
            if c.contains(name) || name.contains(c.as_str()) {
                score = score.max(0.9);
            }
            (score, c)
        })
        .filter(|&(score, _)| score >= 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(5).map(|(_, c)| c.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_similar_names_best_first() {
        let candidates: BTreeSet<String> = ["nova-compute", "nova-api", "sshd", "nova-conductor"]
            .into_iter()
            .map(String::from)
            .collect();
        let got = closest("nova-compte", &candidates);
        assert_eq!(got.first().map(String::as_str), Some("nova-compute"));
        assert!(!got.contains(&"sshd".to_owned()));
    }
}
