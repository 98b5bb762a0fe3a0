//! `scalpels-trace --pid` on a running service, as an operator would run it: started, waited
//! for until it has attached (so attaching is not part of the measured window), its CPU time
//! read around the window, stopped with SIGINT like a Ctrl-C, and its run read back.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::process;
use crate::{root, setup};

/// How long attaching may take: loading every tracer's eBPF programs takes seconds, more on
/// a loaded machine, and the kernel's verifier has been seen to take over a minute.
const ATTACH_LIMIT: Duration = Duration::from_secs(300);
/// How long the loader may take to drain the maps and merge its Parquet segments at the end.
const STOP_LIMIT: Duration = Duration::from_secs(120);

fn scalpels_trace() -> PathBuf {
    root().join("target/release/scalpels-trace")
}

/// The tracers this build has (`--list-tracers`), which are also what runs by default.
pub fn available_tracers() -> Result<Vec<String>> {
    let output = Command::new(scalpels_trace())
        .arg("--list-tracers")
        .output()
        .context("running scalpels-trace --list-tracers")?;
    if !output.status.success() {
        bail!("scalpels-trace --list-tracers failed ({})", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// A running scalpels-trace, killed if dropped before `stop` (a benchmark that failed).
pub struct Tracing {
    child: Option<Child>,
    out: PathBuf,
}

/// What a traced run cost the loader, and where its run went.
pub struct Ended {
    /// User + system CPU seconds of the whole run: attaching, the warm-up, the window, the
    /// final write.
    pub cpu_seconds: f64,
    pub max_rss_kib: i64,
    pub run: PathBuf,
}

impl Tracing {
    /// Starts `scalpels-trace` with `tracers` (all by default) and `extra` options on `pids`,
    /// its runs going to `out`, and returns once it has attached.
    pub fn start(
        tracers: Option<&str>,
        extra: &[&str],
        out: &Path,
        pids: &[u32],
    ) -> Result<Tracing> {
        fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let log = out.join("scalpels-trace.log");
        let log_file =
            fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(scalpels_trace());
        command.arg("--out").arg(out);
        if let Some(tracers) = tracers {
            command.args(["--tracers", tracers]);
        }
        command.args(extra);
        for pid in pids {
            command.args(["--pid", &pid.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("starting scalpels-trace")?;
        let mut tracing = Tracing {
            child: Some(child),
            out: out.to_owned(),
        };
        let start = Instant::now();
        // The manifest is written once every tracer is attached and the targets are set.
        while tracing.run_dir().is_none() {
            if let Some(status) = tracing.child_mut().try_wait()? {
                bail!(
                    "scalpels-trace exited before attaching ({status}): {}",
                    log_tail(&log)
                );
            }
            if start.elapsed() > ATTACH_LIMIT {
                bail!(
                    "scalpels-trace did not attach in {ATTACH_LIMIT:?}: {}",
                    log_tail(&log)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        // A tracer the kernel refused is left out with a warning: a benchmark of it would
        // measure nothing.
        let printed = fs::read_to_string(&log).unwrap_or_default();
        if let Some(refused) = printed.lines().find(|line| line.contains("is unavailable")) {
            bail!("{}", refused.chars().take(600).collect::<String>());
        }
        Ok(tracing)
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("a Tracing has its child until stopped")
    }

    fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("a Tracing has its child until stopped")
            .id()
    }

    fn run_dir(&self) -> Option<PathBuf> {
        fs::read_dir(&self.out)
            .ok()?
            .flatten()
            .map(|entry| entry.path())
            .find(|run| run.join("manifest.json").exists())
    }

    /// CPU seconds the loader has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        process::cpu_seconds_so_far(self.pid())
    }

    /// Stops the run as Ctrl-C does and waits for the loader to finish writing it.
    pub fn stop(mut self) -> Result<Ended> {
        let pid = self.pid();
        // From here on this waits for the child itself (wait4, for its resource usage).
        self.child = None;
        process::signal(pid, libc::SIGINT);
        let Some((status, usage)) = process::wait4_within(pid as libc::pid_t, STOP_LIMIT)? else {
            process::signal(pid, libc::SIGKILL);
            let _ = process::wait4(pid as libc::pid_t);
            bail!("scalpels-trace did not finish within {STOP_LIMIT:?} of SIGINT");
        };
        let log = self.out.join("scalpels-trace.log");
        if !status.success() {
            bail!("scalpels-trace failed ({status}): {}", log_tail(&log));
        }
        Ok(Ended {
            cpu_seconds: process::cpu_seconds(&usage),
            max_rss_kib: usage.ru_maxrss,
            run: self
                .run_dir()
                .context("scalpels-trace left no run directory")?,
        })
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Truncated and total counts.
#[derive(Clone, Copy, Default)]
pub struct Share {
    pub truncated: u64,
    pub total: u64,
}

impl Share {
    pub fn add(self, other: Share) -> Share {
        Share {
            truncated: self.truncated + other.truncated,
            total: self.total + other.total,
        }
    }

    /// `12.3%`, or `–` when there was nothing to count.
    pub fn percent(self) -> String {
        if self.total == 0 {
            return "–".into();
        }
        format!("{:.1}%", self.truncated as f64 * 100.0 / self.total as f64)
    }
}

/// A run's Python stacks: how many were cut at `--python-depth`, and how deep those of its
/// rows are.
#[derive(Clone, Copy, Default)]
pub struct Stacks {
    pub on_cpu: Share,
    pub off_cpu: Share,
    /// Stacks of the sql, rpc and http rows.
    pub rows: Share,
    /// The fewest and most frames of a row's stack.
    pub row_depth: Option<(u64, u64)>,
}

impl Stacks {
    pub fn add(self, other: Stacks) -> Stacks {
        Stacks {
            on_cpu: self.on_cpu.add(other.on_cpu),
            off_cpu: self.off_cpu.add(other.off_cpu),
            rows: self.rows.add(other.rows),
            row_depth: match (self.row_depth, other.row_depth) {
                (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
                (one, other) => one.or(other),
            },
        }
    }
}

/// Reads a run's stacks back (xtask/bench/stack_truncation.py, with pyarrow).
pub fn stacks(run: &Path) -> Result<Stacks> {
    let script = root().join("xtask/bench/stack_truncation.py");
    let output = Command::new(setup::venv_python())
        .arg(&script)
        .arg(run)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}",
            script.display(),
            run.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let counts: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing stack_truncation.py's output")?;
    let share = |key: &str| -> Result<Share> {
        let pair = &counts[key];
        match (pair[0].as_u64(), pair[1].as_u64()) {
            (Some(truncated), Some(total)) => Ok(Share { truncated, total }),
            _ => bail!("stack_truncation.py printed no {key} counts: {counts}"),
        }
    };
    let depth = &counts["row_depth"];
    Ok(Stacks {
        on_cpu: share("on_cpu")?,
        off_cpu: share("off_cpu")?,
        rows: share("rows")?,
        row_depth: depth[0].as_u64().zip(depth[1].as_u64()),
    })
}
