//! `scalpels-trace flamegraph --diff BEFORE AFTER`: a differential flame graph (inferno's): AFTER's
//! Python stacks, each frame red where its own time per second rose since BEFORE and blue where
//! it fell, the deeper the colour the larger the change. Time is per second of each side's
//! traced span, so runs of different lengths compare; a side of several runs (replicates) sums
//! their time over their seconds.

use std::{
    io::BufWriter,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};

use super::{
    flamegraph::{self, PAGE_MIN_SHARE, Request},
    folded::{self, Pair, Stacks},
    weighed::{self, Of},
};
use crate::analysis::runs::{self, Run};

/// The two sides of a differential flame graph and which of their stacks to draw.
pub struct Sides<'a> {
    pub before: &'a [Run],
    pub after: &'a [Run],
    pub off_cpu: bool,
    pub pid: Option<u32>,
}

impl Sides<'_> {
    fn kind(&self) -> &'static str {
        if self.off_cpu { "off-CPU" } else { "on-CPU" }
    }

    /// Both sides' stacks in µs per second; an error when a side has no such samples.
    fn stacks(&self) -> Result<Stacks<Pair>> {
        let per_second = |runs: &[Run]| -> Result<Stacks<u64>> {
            let mut ns: Stacks<i64> = Stacks::new();
            for run in runs {
                let request = Request {
                    run: run.dir.clone(),
                    off_cpu: self.off_cpu,
                    pid: self.pid,
                    output: None,
                };
                let weights = weighed::weights(&request, Of::Samples)?;
                for (stack, n) in flamegraph::stack_ns(&run.dir, &weights)? {
                    *ns.entry(stack).or_default() += n;
                }
            }
            let stacks = folded::per_second(&ns, runs.iter().map(|r| r.seconds).sum());
            if stacks.is_empty() {
                let dirs: Vec<String> = runs.iter().map(|r| r.dir.display().to_string()).collect();
                bail!(
                    "{} has no {} Python samples{}",
                    dirs.join(", "),
                    self.kind(),
                    self.pid
                        .map_or(String::new(), |p| format!(" of process {p}"))
                );
            }
            Ok(stacks)
        };
        Ok(folded::pair(
            &per_second(self.before)?,
            &per_second(self.after)?,
        ))
    }

    /// Draws the graph of `stacks` (two counts a line).
    fn render(&self, lines: &[String], min_width: f64, out: impl std::io::Write) -> Result<()> {
        let side = |runs: &[Run]| match runs {
            [run] => run.dir.display().to_string(),
            runs => format!("{} runs", runs.len()),
        };
        flamegraph::render(
            format!(
                "Python {}, {} → {}: red rose, blue fell (time per second)",
                self.kind(),
                side(self.before),
                side(self.after)
            ),
            "µs/s",
            min_width,
            lines,
            out,
        )
    }

    /// The graph for a page (frames narrower than [`PAGE_MIN_SHARE`] of AFTER folded into
    /// their callers).
    pub fn for_page(&self) -> Result<Vec<u8>> {
        let stacks = folded::fold_narrow(&self.stacks()?, |p| p.after, PAGE_MIN_SHARE);
        let mut svg = Vec::new();
        self.render(
            &folded::pair_lines(&stacks),
            PAGE_MIN_SHARE * 100.0,
            &mut svg,
        )?;
        Ok(svg)
    }
}

/// Writes `output` (default `AFTER/python-on-cpu-diff.svg`, or `python-off-cpu-diff.svg`) and its
/// two-count folded stacks beside it (`.folded`, "stack before after" in µs/s, which
/// flamegraph.pl reads too); returns the SVG's path.
pub fn write(
    before: &Path,
    after: &Path,
    off_cpu: bool,
    pid: Option<u32>,
    output: Option<PathBuf>,
) -> Result<PathBuf> {
    let (before_runs, after_runs) = (
        runs::discover(&[before.to_owned()])?,
        runs::discover(&[after.to_owned()])?,
    );
    let sides = Sides {
        before: &before_runs,
        after: &after_runs,
        off_cpu,
        pid,
    };
    let kind = if off_cpu { "off-cpu" } else { "on-cpu" };
    let svg = output.unwrap_or_else(|| after.join(format!("python-{kind}-diff.svg")));
    let lines = folded::pair_lines(&sides.stacks()?);
    flamegraph::write_folded(&svg, &lines)?;
    let file = crate::output::create(&svg)?;
    sides.render(
        &lines,
        inferno::flamegraph::defaults::MIN_WIDTH,
        BufWriter::new(file),
    )?;
    Ok(svg)
}
