//! `scalpels-trace export --format pprof`, read back by pprof itself: `go tool pprof -raw`
//! (Debian's golang-go, which the test set-up installs).

use std::{collections::HashMap, path::Path, process::Command};

use crate::{scalpels_trace, stderr};

/// One sample as pprof prints it.
#[derive(Debug)]
pub struct RawSample {
    /// One per sample type.
    pub values: Vec<i64>,
    /// Location ids, leaf first.
    pub locations: Vec<u64>,
    /// `key:[value]`, e.g. `pid:[1234]`, `thread_name:[python3]`.
    pub labels: Vec<String>,
}

impl RawSample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(":[")?.strip_suffix(']'))
    }
}

/// What `go tool pprof -raw` prints of a profile.
#[derive(Debug)]
pub struct RawProfile {
    /// `type/unit` each.
    pub sample_types: Vec<String>,
    pub samples: Vec<RawSample>,
    /// Location id -> `function file:line s=start_line()`.
    pub locations: HashMap<u64, String>,
}

impl RawProfile {
    /// The sum of each sample type's values.
    pub fn totals(&self) -> Vec<i64> {
        (0..self.sample_types.len())
            .map(|i| self.samples.iter().map(|s| s.values[i]).sum())
            .collect()
    }

    /// A sample's frames, leaf first, as `function file:line`.
    pub fn frames(&self, sample: &RawSample) -> Vec<String> {
        sample
            .locations
            .iter()
            .map(|id| {
                let location = &self.locations[id];
                location
                    .rsplit_once(" s=")
                    .map_or(location.as_str(), |(frame, _)| frame)
                    .to_owned()
            })
            .collect()
    }
}

/// Exports `run` as pprof with `args` (e.g. `--off-cpu`, `--of sql`) to `file` and reads the
/// file back with `go tool pprof -raw`.
pub fn export_and_read(run: &Path, args: &[&str], file: &Path) -> RawProfile {
    let export = Command::new(scalpels_trace())
        .arg("export")
        .arg(run)
        .args(["--format", "pprof", "-o"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr(&export));
    let read = Command::new("go")
        .args(["tool", "pprof", "-raw"])
        .arg(file)
        .output()
        .expect("go tool pprof (Debian's golang-go: cargo xtask setup --tests installs it)");
    assert!(read.status.success(), "{}", stderr(&read));
    parse_raw(&String::from_utf8_lossy(&read.stdout))
}

fn parse_raw(text: &str) -> RawProfile {
    let mut lines = text.lines().skip_while(|l| *l != "Samples:").skip(1);
    let sample_types = lines
        .next()
        .expect("pprof -raw printed no sample types")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut samples: Vec<RawSample> = Vec::new();
    let mut locations = HashMap::new();
    let mut in_locations = false;
    for line in lines {
        match line {
            "Locations" => in_locations = true,
            "Mappings" => break,
            _ if in_locations => {
                let (id, rest) = line.split_once(':').expect("a location line");
                // After the address and the mapping.
                let (_, frame) = rest.trim().split_once(' ').unwrap_or_default();
                let frame = frame
                    .split_once(' ')
                    .filter(|(mapping, _)| mapping.starts_with("M="))
                    .map_or(frame, |(_, frame)| frame);
                locations.insert(id.trim().parse().unwrap(), frame.to_owned());
            }
            _ => {
                let values: Option<Vec<i64>> = line.split_once(':').and_then(|(values, _)| {
                    values.split_whitespace().map(|v| v.parse().ok()).collect()
                });
                match values {
                    Some(values) if !values.is_empty() => {
                        let (_, ids) = line.split_once(':').unwrap();
                        samples.push(RawSample {
                            values,
                            locations: ids
                                .split_whitespace()
                                .map(|id| id.parse().unwrap())
                                .collect(),
                            labels: Vec::new(),
                        });
                    }
                    _ => samples
                        .last_mut()
                        .expect("labels after a sample")
                        .labels
                        .extend(line.split_whitespace().map(str::to_owned)),
                }
            }
        }
    }
    RawProfile {
        sample_types,
        samples,
        locations,
    }
}
