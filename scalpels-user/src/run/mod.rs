//! A run: its directory, its Parquet tables and its manifest.

use std::path::Path;

use anyhow::{Context as _, Result};

pub mod columns;
pub mod manifest;
pub mod read;
pub mod run_dir;
pub mod status;
pub mod table;

/// Version of the run layout (tables, columns, manifest). Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Writes `path` by way of `partial`, renamed once complete. A failed write leaves nothing
/// behind: on a full disk the space goes to what can still be saved (the manifest).
pub fn write_then_rename(
    partial: &Path,
    path: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let result = write(partial).and_then(|()| {
        std::fs::rename(partial, path).with_context(|| format!("renaming {}", partial.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(partial);
    }
    result
}
