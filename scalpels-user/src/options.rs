//! What the options of the CLI and of each tracer share: durations as operators write them,
//! bounded to what the tool can honour, on/off switches, and how both are written to the
//! manifest.

use std::time::Duration;

use clap::ValueEnum;
use serde::Serializer;

/// A duration with a unit (`30s`, `5m`, `250ms`), or a plain number of seconds as `timeout`
/// takes it (`4`, `0.5`).
pub fn duration(s: &str) -> Result<Duration, String> {
    if let Ok(seconds) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{s} is not a number of seconds from 0 up"));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("{e} (give a number of seconds, or a number and a unit: 30s, 5m, 250ms)")
    })
}

/// A [`duration`] from `min` to `max`: each option's range says what the tool can honour
/// (a 0 s interval is no interval; a 1 ns one is a loop burning a CPU).
pub fn duration_within(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let value = duration(s)?;
    if value < min || value > max {
        return Err(format!(
            "{s} is out of range: from {} to {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(value)
}

pub const HOUR: Duration = Duration::from_secs(3600);

/// `--slow-syscall`, `--slow-file-io`: 0 (every call, a firehose for short debugging runs) to
/// an hour.
pub fn slow_threshold(s: &str) -> Result<Duration, String> {
    duration_within(s, Duration::ZERO, HOUR)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    On,
    Off,
}

impl Toggle {
    pub fn is_on(self) -> bool {
        self == Toggle::On
    }
}

/// A duration in the manifest: whole nanoseconds (the field is named `..._ns`).
pub fn nanos<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX))
}

/// A switch in the manifest: a boolean.
pub fn switch<S: Serializer>(value: &Toggle, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(value.is_on())
}
