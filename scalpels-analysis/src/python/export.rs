//! `scalpels-trace export RUN`: a run's Python stacks in the formats profile viewers open:
//! speedscope's JSON (https://www.speedscope.app, one sampled profile per process, each stack
//! once with its total weight in nanoseconds), collapsed stacks (one line per stack with its
//! weight in µs, as flamegraph.pl, inferno and most viewers read them) and pprof's gzipped
//! protobuf (see [`super::pprof`]). The stacks are weighed by the time of the Python samples,
//! or by the latency of the SQL, RPC or HTTP calls they made.

use std::{
    collections::{BTreeMap, HashMap},
    io::{BufWriter, Write as _},
    path::PathBuf,
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::{
    flamegraph::{self, Frame, Request},
    pprof,
    weighed::{self, Of},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Speedscope,
    Collapsed,
    Pprof,
}

impl ExportFormat {
    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Speedscope => "speedscope.json",
            ExportFormat::Collapsed => "collapsed",
            ExportFormat::Pprof => "pb.gz",
        }
    }
}

/// speedscope's file format (its `file-format-schema.json`), the parts written here.
#[derive(Serialize)]
struct SpeedscopeFile {
    #[serde(rename = "$schema")]
    schema: &'static str,
    name: String,
    exporter: String,
    shared: Shared,
    profiles: Vec<SampledProfile>,
}

#[derive(Serialize)]
struct Shared {
    frames: Vec<SpeedscopeFrame>,
}

#[derive(Serialize)]
struct SpeedscopeFrame {
    name: String,
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SampledProfile {
    r#type: &'static str,
    name: String,
    unit: &'static str,
    start_value: i64,
    end_value: i64,
    /// Each sample's frames (indexes into `shared.frames`), outermost first.
    samples: Vec<Vec<usize>>,
    weights: Vec<i64>,
}

/// Writes the export of the stacks weighed by `of` (default `RUN/python-on-cpu.speedscope.json`,
/// or `.collapsed`, `.pb.gz`; `off-cpu`, `sql-latency`, ... for other weights); returns its
/// path.
pub fn write(request: &Request, format: ExportFormat, of: Of) -> Result<PathBuf> {
    let path = request.output.clone().unwrap_or_else(|| {
        request.run.join(format!(
            "python-{}.{}",
            of.file_stem(request.off_cpu),
            format.extension()
        ))
    });
    let bytes = match format {
        ExportFormat::Speedscope => serde_json::to_vec(&speedscope(request, of)?)?,
        ExportFormat::Collapsed => {
            let lines = flamegraph::fold(&request.run, &weighed::weights(request, of)?)?;
            if lines.is_empty() {
                bail!(
                    "{} has no {} Python stacks to export",
                    request.run.display(),
                    of.describe(request.off_cpu)
                );
            }
            lines
                .iter()
                .flat_map(|l| [l.as_bytes(), b"\n"])
                .flatten()
                .copied()
                .collect()
        }
        ExportFormat::Pprof => pprof::gzipped(&pprof::profile(request, of)?)?,
    };
    let mut out = BufWriter::new(crate::output::create(&path)?);
    out.write_all(&bytes)?;
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn speedscope(request: &Request, of: Of) -> Result<SpeedscopeFile> {
    let kind = of.describe(request.off_cpu);
    let stacks = flamegraph::stacks(&request.run)?;
    let mut by_process: HashMap<(u32, u64), i64> = HashMap::new();
    for (stack, weight) in weighed::weights(request, of)? {
        *by_process.entry((stack.pid, stack.stack_id)).or_default() += weight.ns;
    }
    // By process, stacks in a stable order (heaviest first).
    let mut by_pid: BTreeMap<u32, Vec<(u64, i64)>> = BTreeMap::new();
    for ((pid, id), ns) in by_process {
        if ns > 0 && stacks.contains_key(&id) {
            by_pid.entry(pid).or_default().push((id, ns));
        }
    }
    if by_pid.is_empty() {
        bail!(
            "{} has no {kind} Python stacks to export",
            request.run.display()
        );
    }
    let mut frames: Vec<SpeedscopeFrame> = Vec::new();
    let mut index: HashMap<&Frame, usize> = HashMap::new();
    let mut profiles = Vec::new();
    for (pid, mut weighed) in by_pid {
        weighed.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut samples = Vec::with_capacity(weighed.len());
        let mut weights = Vec::with_capacity(weighed.len());
        for (id, ns) in weighed {
            let sample = stacks[&id]
                .iter()
                .map(|frame| {
                    *index.entry(frame).or_insert_with(|| {
                        frames.push(SpeedscopeFrame {
                            name: frame.function.clone(),
                            file: frame.file.clone(),
                            line: frame.line,
                        });
                        frames.len() - 1
                    })
                })
                .collect();
            samples.push(sample);
            weights.push(ns);
        }
        profiles.push(SampledProfile {
            r#type: "sampled",
            name: format!("{kind} Python, process {pid}"),
            unit: "nanoseconds",
            start_value: 0,
            end_value: weights.iter().sum(),
            samples,
            weights,
        });
    }
    Ok(SpeedscopeFile {
        schema: "https://www.speedscope.app/file-format-schema.json",
        name: format!("{} ({kind} Python)", request.run.display()),
        exporter: format!("scalpels-trace {}", env!("CARGO_PKG_VERSION")),
        shared: Shared { frames },
        profiles,
    })
}
