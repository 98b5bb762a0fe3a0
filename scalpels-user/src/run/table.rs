//! One Parquet table of a run.
//!
//! Rows arrive as Arrow batches. They go to a *segment*: a complete Parquet file under
//! `<table>.parts/`, closed (footer written) every flush interval, so a run killed with SIGKILL
//! still has every closed segment readable (`pandas.read_parquet("RUN/<table>.parts")`). When the
//! run ends, the segments' column chunks are copied, without decoding, into
//! `<table>.parquet.partial`, which is renamed to `<table>.parquet`.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use arrow::{array::RecordBatch, datatypes::SchemaRef};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    column::writer::ColumnCloseResult,
    file::{
        metadata::{ParquetMetaData, ParquetMetaDataReader},
        properties::{WriterProperties, WriterVersion},
        writer::SerializedFileWriter,
    },
};

/// Rows of one row group at most; segments are usually closed before reaching it.
const MAX_ROW_GROUP_ROWS: usize = 1 << 20;

pub struct TableWriter {
    name: &'static str,
    schema: SchemaRef,
    run_dir: PathBuf,
    flush_every: Duration,
    segment: Option<Segment>,
    closed_segments: Vec<PathBuf>,
    rows: u64,
}

struct Segment {
    writer: ArrowWriter<File>,
    writing: PathBuf,
    done: PathBuf,
    opened: Instant,
}

impl TableWriter {
    pub fn new(
        run_dir: &Path,
        name: &'static str,
        schema: SchemaRef,
        flush_every: Duration,
    ) -> Self {
        Self {
            name,
            schema,
            run_dir: run_dir.to_owned(),
            flush_every,
            segment: None,
            closed_segments: Vec::new(),
            rows: 0,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The segments closed so far, in order. They no longer change.
    pub fn closed_segments(&self) -> &[PathBuf] {
        &self.closed_segments
    }

    fn parts_dir(&self) -> PathBuf {
        self.run_dir.join(format!("{}.parts", self.name))
    }

    /// Appends a batch; opens a segment if none is open.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.segment.is_none() {
            self.segment = Some(self.open_segment()?);
        }
        let segment = self.segment.as_mut().expect("segment opened above");
        segment
            .writer
            .write(batch)
            .with_context(|| format!("writing rows to {}", segment.writing.display()))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes the open segment when it is older than the flush interval.
    pub fn flush_if_due(&mut self) -> Result<()> {
        match &self.segment {
            Some(segment) if segment.opened.elapsed() >= self.flush_every => self.close_segment(),
            _ => Ok(()),
        }
    }

    fn open_segment(&mut self) -> Result<Segment> {
        let dir = self.parts_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = format!("part-{:05}.parquet", self.closed_segments.len());
        // Hidden while open: dataset readers skip dot-files, so they never see a file without footer.
        let writing = dir.join(format!(".{stem}.partial"));
        let file =
            File::create(&writing).with_context(|| format!("creating {}", writing.display()))?;
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(writer_properties()))
            .with_context(|| format!("starting Parquet file {}", writing.display()))?;
        Ok(Segment {
            writer,
            writing,
            done: dir.join(stem),
            opened: Instant::now(),
        })
    }

    fn close_segment(&mut self) -> Result<()> {
        let Some(segment) = self.segment.take() else {
            return Ok(());
        };
        let (writing, done) = (segment.writing.clone(), segment.done.clone());
        super::write_then_rename(&writing, &done, |writing| {
            segment
                .writer
                .close()
                .map(drop)
                .with_context(|| format!("closing {}", writing.display()))
        })?;
        self.closed_segments.push(done);
        Ok(())
    }

    /// Closes the table, leaving its rows in segments (a table with no rows gets one, empty):
    /// for a run whose segments are uploaded as they close, the segments are the table.
    pub fn finish_as_segments(mut self) -> Result<Vec<PathBuf>> {
        if self.closed_segments.is_empty() && self.segment.is_none() {
            self.segment = Some(self.open_segment()?);
        }
        self.close_segment()?;
        Ok(self.closed_segments)
    }

    /// Closes the table: `<name>.parquet` holds every row; the segments are removed.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.close_segment()?;
        let path = self.run_dir.join(format!("{}.parquet", self.name));
        let partial = self.run_dir.join(format!("{}.parquet.partial", self.name));
        super::write_then_rename(&partial, &path, |partial| {
            if self.closed_segments.is_empty() {
                // No rows: still write the schema, so every run has the same files and columns.
                let file = File::create(partial)
                    .with_context(|| format!("creating {}", partial.display()))?;
                ArrowWriter::try_new(file, self.schema.clone(), Some(writer_properties()))?
                    .close()
                    .map(drop)
                    .with_context(|| format!("closing {}", partial.display()))
            } else {
                concat_segments(&self.closed_segments, partial).with_context(|| {
                    format!(
                        "merging the segments of {} into {}",
                        self.name,
                        partial.display()
                    )
                })
            }
        })?;
        if !self.closed_segments.is_empty() {
            fs::remove_dir_all(self.parts_dir())
                .with_context(|| format!("removing {}", self.parts_dir().display()))?;
        }
        Ok(path)
    }
}

/// Zstd, dictionary encoding (the default for every column), statistics, bounded row groups.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_2_0)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .build()
}

/// Copies the row groups of complete Parquet files with one schema into one file, column chunk
/// by column chunk (no decoding), keeping the first file's key-value metadata (the Arrow schema).
pub fn concat_segments(segments: &[PathBuf], output: &Path) -> Result<()> {
    let inputs = segments
        .iter()
        .map(|path| {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let metadata = ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .with_context(|| format!("reading the footer of {}", path.display()))?;
            Ok((file, metadata))
        })
        .collect::<Result<Vec<(File, ParquetMetaData)>>>()?;
    let first = &inputs.first().context("no segment to merge")?.1;
    let properties = WriterProperties::builder()
        .set_key_value_metadata(first.file_metadata().key_value_metadata().cloned())
        .build();
    let schema = first.file_metadata().schema_descr().root_schema_ptr();
    let file = File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(properties))?;
    for (input, metadata) in &inputs {
        for row_group in metadata.row_groups() {
            let mut out = writer.next_row_group()?;
            for column in row_group.columns() {
                out.append_column(
                    input,
                    ColumnCloseResult {
                        bytes_written: column.compressed_size() as u64,
                        rows_written: row_group.num_rows() as u64,
                        metadata: column.clone(),
                        bloom_filter: None,
                        column_index: None,
                        offset_index: None,
                    },
                )?;
            }
            out.close()?;
        }
    }
    writer.close()?;
    Ok(())
}
