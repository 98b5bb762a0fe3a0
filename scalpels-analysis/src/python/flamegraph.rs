//! `scalpels-trace flamegraph RUN`: a run's Python stacks as folded stacks (which Speedscope and
//! other flame-graph tools import) and as an SVG flame graph drawn by inferno.

use std::{
    collections::{BTreeMap, HashMap},
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

use super::{
    folded::{self, Stacks},
    weighed::{self, Of, ThreadStack, Weight},
};
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
    let mut lines: Vec<(i64, String)> = stack_ns(run, weights)?
        .into_iter()
        .map(|(stack, ns)| (ns / 1000, stack))
        .filter(|(us, _)| *us > 0)
        .map(|(us, stack)| (us, format!("{stack} {us}")))
        .collect();
    lines.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(lines.into_iter().map(|(_, line)| line).collect())
}

/// Each stack's weight in nanoseconds, by its frames' labels (outermost first, joined by `;`).
pub fn stack_ns(run: &Path, weights: &BTreeMap<ThreadStack, Weight>) -> Result<Stacks<i64>> {
    let stacks = stacks(run)?;
    let mut by_label: Stacks<i64> = Stacks::new();
    for (id, ns) in weighed::by_stack(weights) {
        if let Some(frames) = stacks.get(&id) {
            let labels: Vec<String> = frames.iter().map(Frame::label).collect();
            *by_label.entry(labels.join(";")).or_default() += ns;
        }
    }
    Ok(by_label)
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
    write_folded(&svg, &lines)?;
    let file = crate::output::create(&svg)?;
    draw(request, &lines, BufWriter::new(file))?;
    Ok(svg)
}

/// Draws folded stacks (from [`folded`]) as an SVG flame graph.
/// Writes the folded stacks a flame graph is drawn from beside it (`.folded`), which
/// Speedscope and flamegraph.pl read too.
pub fn write_folded(svg: &Path, lines: &[String]) -> Result<()> {
    let mut out = BufWriter::new(crate::output::create(&svg.with_extension("folded"))?);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

pub fn draw(request: &Request, lines: &[String], out: impl std::io::Write) -> Result<()> {
    let kind = if request.off_cpu { "off-cpu" } else { "on-cpu" };
    let title = format!("Python {kind}: {}", request.run.display());
    render(title, "µs", flamegraph::defaults::MIN_WIDTH, lines, out)
}

/// A page (report, diff) folds the frames narrower than this share of the whole into their
/// callers: drawn at full detail, a 45 s run's graph weighed megabytes.
pub const PAGE_MIN_SHARE: f64 = 0.001;

/// What a page says of its flame graphs' cap.
pub fn page_note() -> String {
    format!(
        "Frames narrower than {}% of the whole are folded into their callers \
         (scalpels-trace flamegraph draws them all).",
        PAGE_MIN_SHARE * 100.0
    )
}

/// The run's graph for a page (see [`PAGE_MIN_SHARE`]); None when the run has no such samples
/// (or no python tracer).
pub fn for_page(run: &Path, off_cpu: bool) -> Result<Option<Vec<u8>>> {
    let request = Request {
        run: run.to_owned(),
        off_cpu,
        pid: None,
        output: None,
    };
    let Ok(weights) = weighed::weights(&request, Of::Samples) else {
        return Ok(None);
    };
    let us: Stacks<u64> = stack_ns(run, &weights)?
        .into_iter()
        .map(|(stack, ns)| (stack, (ns / 1000) as u64))
        .filter(|(_, us)| *us > 0)
        .collect();
    if us.is_empty() {
        return Ok(None);
    }
    let lines = folded::lines(&folded::fold_narrow(&us, |us| *us, PAGE_MIN_SHARE));
    let kind = if off_cpu { "off-cpu" } else { "on-cpu" };
    let mut svg = Vec::new();
    render(
        format!("Python {kind}: {}", run.display()),
        "µs",
        PAGE_MIN_SHARE * 100.0,
        &lines,
        &mut svg,
    )?;
    Ok(Some(svg))
}

/// Draws folded stack lines (one count per line: a flame graph; two: a differential
/// one, coloured by the change from the first to the second), leaving out frames narrower
/// than `min_width` percent of the whole.
pub(super) fn render(
    title: String,
    count_name: &str,
    min_width: f64,
    lines: &[String],
    out: impl std::io::Write,
) -> Result<()> {
    let mut options = flamegraph::Options::default();
    options.title = title;
    options.count_name = count_name.into();
    options.min_width = min_width;
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
        .context("drawing the flame graph")
}
