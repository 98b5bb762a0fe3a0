//! A run: its directory, its Parquet tables and its manifest.

pub mod columns;
pub mod manifest;
pub mod read;
pub mod run_dir;
pub mod status;
pub mod table;

/// Version of the run layout (tables, columns, manifest). Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;
