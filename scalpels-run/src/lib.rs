//! The run format of Scalpels, apart from the tracers that write it and the analyses that
//! read it: a run directory (files created relative to it, never following links), its
//! Parquet tables written as crash-safe segments, its manifest, reading runs back, and the
//! fleet layout runs of many hosts are gathered in, with their uploads.

pub mod durations;
pub mod fleet;
pub mod run;
