//! What the options of the CLI and of each tracer share: durations as operators write them,
//! bounded to what the tool can honour, on/off switches, and how both are written to the
//! manifest.

use std::time::Duration;

use clap::ValueEnum;
pub use scalpels_run::durations::{HOUR, duration_within};
use serde::Serializer;

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
