//! One Parquet table of a run.
//!
//! Rows arrive as Arrow batches. They go to a *segment*: a complete Parquet file under
//! `<table>.parts/`, closed (footer written) every flush interval, so a run killed with SIGKILL
//! still has every closed segment readable (`pandas.read_parquet("RUN/<table>.parts")`). When the
//! run ends, the segments' column chunks are copied, without decoding, into
//! `<table>.parquet.partial`, which is renamed to `<table>.parquet`.

use std::{
    fs::File,
    path::PathBuf,
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

use super::dir::Dir;

/// Rows of one row group at most; segments are usually closed before reaching it.
const MAX_ROW_GROUP_ROWS: usize = 1 << 20;

pub struct TableWriter {
    name: &'static str,
    schema: SchemaRef,
    run_dir: Dir,
    /// `<table>.parts/`, once the first segment is opened.
    parts: Option<Dir>,
    flush_every: Duration,
    segment: Option<Segment>,
    closed_segments: Vec<PathBuf>,
    /// Rows in closed segments: on disk, readable.
    rows: u64,
    /// Rows given to the table that a write error kept off the disk.
    rows_lost: u64,
}

struct Segment {
    writer: ArrowWriter<File>,
    rows: u64,
    /// File names in `parts`.
    writing: String,
    done: String,
    opened: Instant,
}

impl TableWriter {
    pub fn new(
        run_dir: &Dir,
        name: &'static str,
        schema: SchemaRef,
        flush_every: Duration,
    ) -> Self {
        Self {
            name,
            schema,
            run_dir: run_dir.clone(),
            parts: None,
            flush_every,
            segment: None,
            closed_segments: Vec::new(),
            rows: 0,
            rows_lost: 0,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Rows written or being written (in the open segment); once the table is finished,
    /// exactly the rows on disk.
    pub fn rows(&self) -> u64 {
        self.rows + self.segment.as_ref().map_or(0, |s| s.rows)
    }

    /// Rows lost to write errors.
    pub fn rows_lost(&self) -> u64 {
        self.rows_lost
    }

    /// The segments closed so far, in order. They no longer change.
    pub fn closed_segments(&self) -> &[PathBuf] {
        &self.closed_segments
    }

    fn parts_name(&self) -> String {
        format!("{}.parts", self.name)
    }

    fn parts(&mut self) -> Result<&Dir> {
        if self.parts.is_none() {
            self.parts = Some(self.run_dir.subdir(&self.parts_name())?);
        }
        Ok(self.parts.as_ref().expect("opened above"))
    }

    /// Appends a batch; opens a segment if none is open. The rows count as written once
    /// their segment is closed; after a write error they and the segment's count as lost.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return Ok(());
        }
        if self.segment.is_none() {
            match self.open_segment() {
                Ok(segment) => self.segment = Some(segment),
                Err(e) => {
                    self.rows_lost += rows;
                    return Err(e);
                }
            }
        }
        let segment = self.segment.as_mut().expect("segment opened above");
        segment.rows += rows;
        let written = segment
            .writer
            .write(batch)
            .with_context(|| format!("writing rows to {}", segment.writing));
        if written.is_err() {
            self.discard_segment();
        }
        written
    }

    /// Gives up the open segment after a write error: its rows are lost, its file removed.
    fn discard_segment(&mut self) {
        if let Some(segment) = self.segment.take() {
            self.rows_lost += segment.rows;
            if let Some(parts) = &self.parts {
                let _ = parts.remove_file(&segment.writing);
            }
        }
    }

    /// Closes the open segment when it is older than the flush interval.
    pub fn flush_if_due(&mut self) -> Result<()> {
        match &self.segment {
            Some(segment) if segment.opened.elapsed() >= self.flush_every => self.close_segment(),
            _ => Ok(()),
        }
    }

    fn open_segment(&mut self) -> Result<Segment> {
        let done = format!("part-{:05}.parquet", self.closed_segments.len());
        // Hidden while open: dataset readers skip dot-files, so they never see a file without footer.
        let writing = format!(".{done}.partial");
        let schema = self.schema.clone();
        let parts = self.parts()?;
        let file = parts.create(&writing)?;
        let writer = ArrowWriter::try_new(file, schema, Some(writer_properties()))
            .with_context(|| format!("starting Parquet file {writing}"))
            .inspect_err(|_| {
                let _ = parts.remove_file(&writing);
            })?;
        Ok(Segment {
            writer,
            rows: 0,
            writing,
            done,
            opened: Instant::now(),
        })
    }

    fn close_segment(&mut self) -> Result<()> {
        let Some(segment) = self.segment.take() else {
            return Ok(());
        };
        let parts = self.parts()?.clone();
        let closed = segment
            .writer
            .close()
            .map(drop)
            .with_context(|| format!("closing {}", segment.writing))
            .and_then(|()| parts.rename(&segment.writing, &segment.done));
        if closed.is_err() {
            let _ = parts.remove_file(&segment.writing);
            self.rows_lost += segment.rows;
        }
        closed?;
        self.closed_segments.push(parts.path().join(&segment.done));
        self.rows += segment.rows;
        Ok(())
    }

    /// Continues the table in `run_dir`, a new run's directory: the rows written from now on
    /// go there. The writer of the rows written so far is returned, to be finished in its own
    /// run.
    pub fn rotate(&mut self, run_dir: &Dir) -> TableWriter {
        let next = TableWriter::new(run_dir, self.name, self.schema.clone(), self.flush_every);
        std::mem::replace(self, next)
    }

    /// Closes the table, leaving its rows in segments (a table with no rows gets one, empty):
    /// for a run whose segments are uploaded as they close, the segments are the table.
    pub fn finish_as_segments(&mut self) -> Result<&[PathBuf]> {
        if self.closed_segments.is_empty() && self.segment.is_none() {
            self.segment = Some(self.open_segment()?);
        }
        self.close_segment()?;
        Ok(&self.closed_segments)
    }

    /// Closes the table: `<name>.parquet` holds every row; the segments are removed.
    pub fn finish(&mut self) -> Result<PathBuf> {
        self.close_segment()?;
        let file = format!("{}.parquet", self.name);
        let partial = format!("{file}.partial");
        self.run_dir.write_then_rename(&partial, &file, |output| {
            if self.closed_segments.is_empty() {
                // No rows: still write the schema, so every run has the same files and columns.
                ArrowWriter::try_new(output, self.schema.clone(), Some(writer_properties()))?
                    .close()
                    .map(drop)
                    .with_context(|| format!("closing {partial}"))
            } else {
                let parts = self.parts.as_ref().expect("segments were written there");
                let inputs = (0..self.closed_segments.len())
                    .map(|i| parts.open_file(&format!("part-{i:05}.parquet")))
                    .collect::<Result<Vec<File>>>()?;
                concat_segments(inputs, output).with_context(|| {
                    format!("merging the segments of {} into {partial}", self.name)
                })
            }
        })?;
        if !self.closed_segments.is_empty() {
            self.run_dir.remove_subdir(&self.parts_name())?;
        }
        Ok(self.run_dir.path().join(file))
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
fn concat_segments(segments: Vec<File>, output: File) -> Result<()> {
    let inputs = segments
        .into_iter()
        .enumerate()
        .map(|(i, file)| {
            let metadata = ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .with_context(|| format!("reading the footer of segment {i}"))?;
            Ok((file, metadata))
        })
        .collect::<Result<Vec<(File, ParquetMetaData)>>>()?;
    let first = &inputs.first().context("no segment to merge")?.1;
    let properties = WriterProperties::builder()
        .set_key_value_metadata(first.file_metadata().key_value_metadata().cloned())
        .build();
    let schema = first.file_metadata().schema_descr().root_schema_ptr();
    let mut writer = SerializedFileWriter::new(output, schema, Arc::new(properties))?;
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

#[cfg(test)]
mod tests {
    use arrow::{
        array::UInt64Array,
        datatypes::{DataType, Field, Schema},
    };

    use super::*;

    fn scratch(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("scalpels-table-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir::open(&dir).unwrap()
    }

    fn batch(schema: &SchemaRef, values: Vec<u64>) -> RecordBatch {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(UInt64Array::from(values))]).unwrap()
    }

    fn values(file: &std::path::Path) -> Vec<u64> {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            File::open(file).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        reader
            .flat_map(|b| {
                let b = b.unwrap();
                let column = b.column(0).as_any().downcast_ref::<UInt64Array>().unwrap();
                column.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn a_rotated_table_keeps_each_row_in_the_run_it_was_written_in() {
        let (first, second) = (scratch("first"), scratch("second"));
        let schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("n", DataType::UInt64, false)]));
        let mut table = TableWriter::new(&first, "t", schema.clone(), Duration::from_secs(60));
        table.write(&batch(&schema, vec![1, 2])).unwrap();
        let mut closing = table.rotate(&second);
        table.write(&batch(&schema, vec![3])).unwrap();
        assert_eq!(values(&closing.finish().unwrap()), [1, 2]);
        assert_eq!(closing.rows(), 2);
        assert_eq!(values(&table.finish().unwrap()), [3]);
        assert_eq!(table.rows(), 1);
        for dir in [first, second] {
            std::fs::remove_dir_all(dir.path()).unwrap();
        }
    }
}
