//! `scalpels-trace flamegraph RUN`: a run's Python stacks as folded stacks (which Speedscope and
//! other flame-graph tools import) and as an SVG flame graph drawn by inferno.

use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use arrow::{
    array::{Array as _, AsArray as _, RecordBatch},
    compute::cast,
    datatypes::{DataType, UInt32Type, UInt64Type},
};
use inferno::flamegraph;

use super::weighed::{self, Of, ThreadStack, Weight};
use crate::run::read;

/// Which of a run's Python stacks to draw or export, and where to (the arguments `flamegraph`
/// and `export` share).
#[derive(Debug, clap::Args)]
pub struct Request {
    /// The run directory.
    pub run: PathBuf,
    /// Where the service waited (off-CPU stacks) instead of where it ran.
    #[arg(long)]
    pub off_cpu: bool,
    /// Only this process.
    #[arg(long)]
    pub pid: Option<u32>,
    /// The file to write (default: in the run directory, named after what it holds:
    /// python-on-cpu.svg, .speedscope.json, .collapsed, .pb.gz; python-off-cpu.* with
    /// --off-cpu, python-sql-latency.* with --of sql, ...).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub(super) fn column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a dyn arrow::array::Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .with_context(|| format!("no column {name}"))
}

pub(super) fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<String>> {
    let array = cast(column(batch, name)?, &DataType::Utf8)?;
    let array = array.as_string::<i32>();
    Ok((0..array.len())
        .map(|i| array.value(i).to_owned())
        .collect())
}

/// One frame of a stack as `python_stacks` has it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: Option<u32>,
}

impl Frame {
    /// `function (file.py:line)`, the file without its directory; no `;` (folded stacks
    /// separate frames with it).
    fn label(&self) -> String {
        let path = Path::new(&self.file);
        let file = path
            .file_name()
            .map_or(self.file.clone(), |f| f.to_string_lossy().into_owned());
        let place = match self.line {
            Some(line) => format!("{file}:{line}"),
            None => file,
        };
        format!("{} ({place})", self.function).replace(';', ",")
    }
}

/// stack_id -> frames, outermost first (folded stacks read root to leaf).
pub fn stacks(run: &Path) -> Result<HashMap<u64, Vec<Frame>>> {
    let mut frames: HashMap<u64, BTreeMap<u32, Frame>> = HashMap::new();
    for batch in read::table(run, "python_stacks")? {
        let ids = column(&batch, "stack_id")?.as_primitive::<UInt64Type>();
        let levels = column(&batch, "level")?.as_primitive::<UInt32Type>();
        let lines = column(&batch, "line")?.as_primitive::<UInt32Type>();
        let (functions, files) = (strings(&batch, "function")?, strings(&batch, "file")?);
        for (i, (function, file)) in functions.into_iter().zip(files).enumerate() {
            let line = (!lines.is_null(i)).then(|| lines.value(i));
            let frame = Frame {
                function,
                file,
                line,
            };
            frames
                .entry(ids.value(i))
                .or_default()
                .insert(levels.value(i), frame);
        }
    }
    Ok(frames
        .into_iter()
        .map(|(id, levels)| (id, levels.into_values().rev().collect()))
        .collect())
}

/// The Python samples' folded stacks (see [`fold`]).
pub fn folded(request: &Request) -> Result<Vec<String>> {
    fold(&request.run, &weighed::weights(request, Of::Samples)?)
}

/// Folded stacks ("outer;middle;leaf weight"), weights in microseconds, heaviest first.
pub fn fold(run: &Path, weights: &BTreeMap<ThreadStack, Weight>) -> Result<Vec<String>> {
    let stacks = stacks(run)?;
    let mut lines: Vec<(i64, String)> = weighed::by_stack(weights)
        .into_iter()
        .filter_map(|(id, ns)| {
            let labels: Vec<String> = stacks.get(&id)?.iter().map(Frame::label).collect();
            Some((ns / 1000, format!("{} {}", labels.join(";"), ns / 1000)))
        })
        .filter(|(us, _)| *us > 0)
        .collect();
    lines.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(lines.into_iter().map(|(_, line)| line).collect())
}

/// Writes `<output>.svg` (default `RUN/python-on-cpu.svg` or `python-off-cpu.svg`) and the
/// folded stacks beside it; returns the SVG's path.
pub fn write(request: &Request) -> Result<PathBuf> {
    let kind = if request.off_cpu { "off-cpu" } else { "on-cpu" };
    let svg = request
        .output
        .clone()
        .unwrap_or_else(|| request.run.join(format!("python-{kind}.svg")));
    let lines = folded(request)?;
    if lines.is_empty() {
        bail!(
            "{} has no {kind} Python samples{}",
            request.run.display(),
            request
                .pid
                .map_or(String::new(), |p| format!(" of process {p}"))
        );
    }
    let folded_path = svg.with_extension("folded");
    let mut out = BufWriter::new(
        File::create(&folded_path)
            .with_context(|| format!("creating {}", folded_path.display()))?,
    );
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    let file = File::create(&svg).with_context(|| format!("creating {}", svg.display()))?;
    draw(request, &lines, BufWriter::new(file))?;
    Ok(svg)
}

/// Draws folded stacks (from [`folded`]) as an SVG flame graph.
pub fn draw(request: &Request, lines: &[String], out: impl std::io::Write) -> Result<()> {
    let kind = if request.off_cpu { "off-cpu" } else { "on-cpu" };
    let mut options = flamegraph::Options::default();
    options.title = format!("Python {kind}: {}", request.run.display());
    options.count_name = "µs".into();
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
        .context("drawing the flame graph")
}
