//! `scalpels-trace export --format pprof`: a run's Python stacks as a gzipped pprof profile
//! (`profile.proto`), which `go tool pprof`, Pyroscope and Grafana open. One sample per
//! (thread, stack), its values the rows that weigh it (samples or calls) and their total time
//! in ns, its labels the process and thread ids (numbers) and the thread's name (when the run
//! has the `syscalls` table, which names threads).

use std::{collections::HashMap, io::Write as _, path::Path};

use anyhow::{Context as _, Result, bail};
use arrow::{
    array::AsArray as _,
    compute::cast,
    datatypes::{DataType, Int64Type, UInt32Type, UInt64Type},
};
use flate2::{Compression, write::GzEncoder};
use prost::Message as _;

use super::{
    flamegraph::{self, Frame, Request, column, strings},
    profile_proto::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType},
    weighed::{self, Of},
};
use crate::{analysis::runs, run::read};

/// Which thread a sample is of.
pub struct Thread<'a> {
    pub pid: u32,
    pub tid: u32,
    pub name: Option<&'a str>,
}

/// The one mapping every location is in: Python code, whose frames come named.
const PYTHON_MAPPING: u64 = 1;

/// Builds a profile, each string, function and location once.
pub struct Builder {
    profile: Profile,
    strings: HashMap<String, i64>,
    /// By (name, file).
    functions: HashMap<(String, String), u64>,
    /// By (function id, line).
    locations: HashMap<(u64, i64), u64>,
}

impl Builder {
    /// A profile whose samples hold one value per `(type, unit)` of `sample_types` (viewers
    /// show the last by default), taken every `period` of `period_type`.
    pub fn new(sample_types: &[(&str, &str)], period_type: (&str, &str), period: i64) -> Self {
        let mut builder = Builder {
            profile: Profile::default(),
            strings: HashMap::new(),
            functions: HashMap::new(),
            locations: HashMap::new(),
        };
        builder.string("");
        builder.profile.sample_type = sample_types
            .iter()
            .map(|&value_type| builder.value_type(value_type))
            .collect();
        builder.profile.period_type = Some(builder.value_type(period_type));
        builder.profile.period = period;
        // Without a mapping, pprof makes one up and looks for a binary to symbolize with.
        builder.profile.mapping = vec![Mapping {
            id: PYTHON_MAPPING,
            filename: builder.string("[python]"),
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
        }];
        builder
    }

    fn string(&mut self, text: &str) -> i64 {
        if let Some(&index) = self.strings.get(text) {
            return index;
        }
        let index = self.profile.string_table.len() as i64;
        self.profile.string_table.push(text.to_owned());
        self.strings.insert(text.to_owned(), index);
        index
    }

    fn value_type(&mut self, (r#type, unit): (&str, &str)) -> ValueType {
        ValueType {
            r#type: self.string(r#type),
            unit: self.string(unit),
        }
    }

    fn function(&mut self, frame: &Frame) -> u64 {
        let key = (frame.function.clone(), frame.file.clone());
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.profile.function.len() as u64 + 1;
        // No system name: pprof takes a function whose name is its system name as not yet
        // demangled, and strips `<...>` from it as from a C++ name (`<module>` would be "").
        // python_stacks has no start line.
        let function = Function {
            id,
            name: self.string(&frame.function),
            system_name: 0,
            filename: self.string(&frame.file),
            start_line: 0,
        };
        self.profile.function.push(function);
        self.functions.insert(key, id);
        id
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        let function_id = self.function(frame);
        let line = frame.line.map_or(0, i64::from);
        *self
            .locations
            .entry((function_id, line))
            .or_insert_with(|| {
                let id = self.profile.location.len() as u64 + 1;
                self.profile.location.push(Location {
                    id,
                    mapping_id: PYTHON_MAPPING,
                    line: vec![Line { function_id, line }],
                });
                id
            })
    }

    /// A sample of `frames` (outermost first, as `python_stacks` reads) with `values`.
    pub fn sample(&mut self, frames: &[Frame], values: Vec<i64>, thread: &Thread) {
        let location_id = frames.iter().rev().map(|f| self.location(f)).collect();
        let mut label = vec![
            self.number("pid", thread.pid.into()),
            self.number("tid", thread.tid.into()),
        ];
        if let Some(name) = thread.name {
            label.push(Label {
                key: self.string("thread_name"),
                str: self.string(name),
                num: 0,
            });
        }
        self.profile.sample.push(Sample {
            location_id,
            value: values,
            label,
        });
    }

    fn number(&mut self, key: &str, num: i64) -> Label {
        Label {
            key: self.string(key),
            str: 0,
            num,
        }
    }

    pub fn comment(&mut self, text: &str) {
        let index = self.string(text);
        self.profile.comment.push(index);
    }

    /// The profile, covering `duration_nanos` from `time_nanos` (UTC ns).
    pub fn finish(mut self, time_nanos: i64, duration_nanos: i64) -> Profile {
        self.profile.time_nanos = time_nanos;
        self.profile.duration_nanos = duration_nanos;
        self.profile
    }
}

/// The encoded profile, gzipped as pprof files are.
pub fn gzipped(profile: &Profile) -> Result<Vec<u8>> {
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    gzip.write_all(&profile.encode_to_vec())?;
    gzip.finish().context("compressing the profile")
}

/// The profile of a run's stacks weighed by `of`: values (samples, cpu or wall ns) or (calls,
/// latency ns).
pub fn profile(request: &Request, of: Of) -> Result<Profile> {
    let weights = weighed::weights(request, of)?;
    let stacks = flamegraph::stacks(&request.run)?;
    let names = thread_names(&request.run)?;
    let run = runs::one(&request.run)?;
    let (rows, time) = match (of, request.off_cpu) {
        (Of::Samples, false) => ("samples", "cpu"),
        (Of::Samples, true) => ("samples", "wall"),
        _ => ("calls", "latency"),
    };
    let mut builder = match of {
        // A sample stands for the time between two samples (on CPU) or the time waited (off
        // CPU): the period is their mean.
        Of::Samples => {
            let (samples, ns) = weights
                .values()
                .fold((0, 0), |(s, n), w| (s + w.rows, n + w.ns));
            let mean = if samples > 0 { ns / samples } else { 0 };
            Builder::new(
                &[(rows, "count"), (time, "nanoseconds")],
                (time, "nanoseconds"),
                mean,
            )
        }
        // Every call is recorded.
        _ => Builder::new(
            &[(rows, "count"), (time, "nanoseconds")],
            (rows, "count"),
            1,
        ),
    };
    builder.comment(&format!(
        "scalpels-trace {}: {} of the Python stacks of {}",
        env!("CARGO_PKG_VERSION"),
        of.describe(request.off_cpu),
        request.run.display()
    ));
    let mut samples = 0;
    for (stack, weight) in &weights {
        let Some(frames) = stacks.get(&stack.stack_id) else {
            continue;
        };
        let thread = Thread {
            pid: stack.pid,
            tid: stack.tid,
            name: names.get(&(stack.pid, stack.tid)).map(String::as_str),
        };
        builder.sample(frames, vec![weight.rows, weight.ns], &thread);
        samples += 1;
    }
    if samples == 0 {
        bail!(
            "{} has no {} Python stacks to export",
            request.run.display(),
            of.describe(request.off_cpu)
        );
    }
    let start = run.traced_from.as_nanosecond();
    let duration = run.ended_at.as_nanosecond() - start;
    Ok(builder.finish(start as i64, duration as i64))
}

/// Each thread's name (`comm`), from the `syscalls` table if the run has it: the name of its
/// latest interval, and of the most calls there (a command's first thread has two names in
/// its first interval: the loader's, for the calls it made before `exec`, then its program's).
fn thread_names(run: &Path) -> Result<HashMap<(u32, u32), String>> {
    if !run.join("syscalls.parquet").is_file() && !run.join("syscalls.parts").is_dir() {
        return Ok(HashMap::new());
    }
    // By thread, interval (its end) and name: the calls.
    let mut calls_of: HashMap<(u32, u32), HashMap<(i64, String), u64>> = HashMap::new();
    for batch in read::table(run, "syscalls")? {
        let pids = column(&batch, "pid")?.as_primitive::<UInt32Type>();
        let tids = column(&batch, "tid")?.as_primitive::<UInt32Type>();
        let calls = column(&batch, "calls")?.as_primitive::<UInt64Type>();
        let ends = cast(column(&batch, "interval_end")?, &DataType::Int64)?;
        let ends = ends.as_primitive::<Int64Type>();
        for (i, comm) in strings(&batch, "comm")?.into_iter().enumerate() {
            *calls_of
                .entry((pids.value(i), tids.value(i)))
                .or_default()
                .entry((ends.value(i), comm))
                .or_default() += calls.value(i);
        }
    }
    Ok(calls_of
        .into_iter()
        .filter_map(|(thread, names)| {
            let ((_, comm), _) = names
                .into_iter()
                .max_by_key(|((end, _), calls)| (*end, *calls))?;
            Some((thread, comm))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use flate2::read::GzDecoder;

    use super::*;

    fn frame(function: &str, file: &str, line: Option<u32>) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line,
        }
    }

    /// Encodes, gunzips and decodes what the builder made.
    fn round_trip(profile: &Profile) -> Profile {
        let mut encoded = Vec::new();
        GzDecoder::new(gzipped(profile).unwrap().as_slice())
            .read_to_end(&mut encoded)
            .unwrap();
        Profile::decode(encoded.as_slice()).unwrap()
    }

    #[test]
    fn a_profile_reads_back_with_each_string_function_and_location_once() {
        let mut builder = Builder::new(
            &[("samples", "count"), ("cpu", "nanoseconds")],
            ("cpu", "nanoseconds"),
            2_000_000,
        );
        let (outer, middle) = (
            frame("outer", "/app/a.py", Some(3)),
            frame("middle", "/app/a.py", Some(7)),
        );
        let thread = Thread {
            pid: 10,
            tid: 11,
            name: Some("worker"),
        };
        builder.sample(
            &[
                outer.clone(),
                middle.clone(),
                frame("leaf", "/app/b.py", Some(1)),
            ],
            vec![3, 6_000_000],
            &thread,
        );
        // The same function at another line is another location of the same function.
        builder.sample(
            &[outer, middle, frame("middle", "/app/a.py", Some(8))],
            vec![1, 2_000_000],
            &Thread {
                name: None,
                ..thread
            },
        );
        let profile = round_trip(&builder.finish(1_000, 5_000));
        let text = |index: i64| profile.string_table[index as usize].as_str();
        assert_eq!(text(0), "");
        let mut unique = profile.string_table.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), profile.string_table.len(), "each string once");
        let types: Vec<(&str, &str)> = profile
            .sample_type
            .iter()
            .map(|t| (text(t.r#type), text(t.unit)))
            .collect();
        assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
        assert_eq!((profile.time_nanos, profile.duration_nanos), (1_000, 5_000));
        assert_eq!(profile.period, 2_000_000);

        let functions: HashMap<u64, &Function> =
            profile.function.iter().map(|f| (f.id, f)).collect();
        assert_eq!(functions.len(), 3, "outer, middle, leaf");
        let locations: HashMap<u64, &Location> =
            profile.location.iter().map(|l| (l.id, l)).collect();
        assert_eq!(locations.len(), 4, "middle twice, at lines 7 and 8");
        let named = |sample: &Sample| -> Vec<(String, String, i64)> {
            sample
                .location_id
                .iter()
                .map(|id| {
                    let line = &locations[id].line[0];
                    let function = functions[&line.function_id];
                    assert_eq!(locations[id].mapping_id, profile.mapping[0].id);
                    (
                        text(function.name).to_owned(),
                        text(function.filename).to_owned(),
                        line.line,
                    )
                })
                .collect()
        };
        let owned = |frames: &[(&str, &str, i64)]| -> Vec<(String, String, i64)> {
            frames
                .iter()
                .map(|&(f, file, l)| (f.to_owned(), file.to_owned(), l))
                .collect()
        };
        assert_eq!(
            named(&profile.sample[0]),
            owned(&[
                ("leaf", "/app/b.py", 1),
                ("middle", "/app/a.py", 7),
                ("outer", "/app/a.py", 3)
            ])
        );
        assert_eq!(
            named(&profile.sample[1]),
            owned(&[
                ("middle", "/app/a.py", 8),
                ("middle", "/app/a.py", 7),
                ("outer", "/app/a.py", 3)
            ])
        );
        assert_eq!(profile.sample[0].value, [3, 6_000_000]);
        let labels = |sample: &Sample| -> Vec<(String, String, i64)> {
            sample
                .label
                .iter()
                .map(|l| (text(l.key).to_owned(), text(l.str).to_owned(), l.num))
                .collect()
        };
        assert_eq!(
            labels(&profile.sample[0]),
            owned(&[
                ("pid", "", 10),
                ("tid", "", 11),
                ("thread_name", "worker", 0)
            ])
        );
        assert_eq!(
            labels(&profile.sample[1]),
            owned(&[("pid", "", 10), ("tid", "", 11)])
        );
    }
}
