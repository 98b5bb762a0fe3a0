//! `scalpels-trace sql RUN... "SELECT ..."`: the engine the reports use, for any question.

use std::{io::Write, sync::Arc};

use anyhow::{Context as _, Result};
use arrow::{
    array::{ArrayRef, AsArray as _, RecordBatch},
    compute::cast,
    datatypes::{DataType, Field, Int64Type, Schema},
    util::display::{ArrayFormatter, FormatOptions},
};

use super::{
    dataset::Dataset,
    render::{self, Style},
    table::{Cell, Column, Kind, Mark, Table},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    Table,
    Csv,
    Json,
}

pub async fn run(dataset: &Dataset, query: &str, format: SqlFormat) -> Result<()> {
    let batches = dataset.query(query).await?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => dataset.frame(query).await?.schema().inner().clone(),
    };
    let mut out = std::io::stdout().lock();
    match format {
        SqlFormat::Table => out.write_all(as_text(&schema, &batches)?.as_bytes())?,
        SqlFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for batch in &batches {
                writer.write(&plain(batch)?)?;
            }
        }
        SqlFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut out);
            let plain: Vec<RecordBatch> = batches.iter().map(plain).collect::<Result<_>>()?;
            writer.write_batches(&plain.iter().collect::<Vec<_>>())?;
            writer.finish()?;
            drop(writer);
            writeln!(out)?;
        }
    }
    out.flush().context("writing the result")
}

/// Types every CSV/JSON reader knows: durations as integer nanoseconds, strings plain.
fn plain(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let to = match field.data_type() {
            DataType::Duration(_) => Some(DataType::Int64),
            DataType::Dictionary(_, value) if value.is_string() => Some(DataType::Utf8),
            DataType::Utf8View | DataType::LargeUtf8 => Some(DataType::Utf8),
            _ => None,
        };
        match to {
            Some(to) => {
                columns.push(cast(column, &to)?);
                fields.push(Field::new(field.name(), to, field.is_nullable()));
            }
            None => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn kind_of(data_type: &DataType) -> Kind {
    match data_type {
        DataType::Duration(_) => Kind::Duration,
        t if t.is_numeric() => Kind::Number,
        _ => Kind::Text,
    }
}

/// An aligned table; durations read as "1.5 ms", everything else as Arrow prints it.
fn as_text(schema: &Schema, batches: &[RecordBatch]) -> Result<String> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| Column {
            key: f.name().clone().into(),
            title: f.name().clone().into(),
            kind: kind_of(f.data_type()),
        })
        .collect();
    let mut table = Table::new("result", "", columns);
    let options = FormatOptions::default();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()?;
        let nanoseconds: Vec<Option<ArrayRef>> = batch
            .columns()
            .iter()
            .map(|c| {
                matches!(c.data_type(), DataType::Duration(_))
                    .then(|| cast(c, &DataType::Int64))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let cells = (0..batch.num_columns())
                .map(|i| match &nanoseconds[i] {
                    _ if batch.column(i).is_null(row) => Cell::Empty,
                    Some(ns) => Cell::Int(ns.as_primitive::<Int64Type>().value(row)),
                    None => Cell::Text(formatters[i].value(row).to_string()),
                })
                .collect();
            table.push(cells, Mark::Plain);
        }
    }
    Ok(render::text(&table, &Style::for_stdout()))
}
