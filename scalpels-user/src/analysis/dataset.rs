//! Runs as one SQL dataset: each table name (`syscalls`, `python_samples`, `sql`, ...) is one
//! table holding the rows of every run that has it, with the partition columns `host`,
//! `service` and `run` added from each run's manifest; plus a `runs` table, one row per run.

use std::{collections::BTreeSet, sync::Arc};

use anyhow::{Context as _, Result, anyhow};
use arrow::{
    array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray},
    datatypes::{DataType, Field, Schema, TimeUnit},
};
use datafusion::{
    datasource::MemTable,
    error::DataFusionError,
    prelude::{DataFrame, ParquetReadOptions, SessionConfig, SessionContext, lit},
};

use super::{functions, runs::Run};

pub struct Dataset {
    pub ctx: SessionContext,
    /// Names of the tables at least one run has.
    pub tables: BTreeSet<String>,
}

impl Dataset {
    pub async fn open(runs: &[Run]) -> Result<Self> {
        // Two partitions: the machines this runs on are small, and more only adds overhead.
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        functions::register(&ctx);
        let mut by_table: std::collections::BTreeMap<String, Vec<DataFrame>> = Default::default();
        for run in runs {
            for (table, path) in super::runs::tables(run)? {
                let frame = ctx
                    .read_parquet(path.display().to_string(), ParquetReadOptions::default())
                    .await
                    .and_then(|frame| {
                        frame
                            .with_column("host", lit(run.host.as_str()))?
                            .with_column("service", lit(run.service.as_str()))?
                            .with_column("run", lit(run.run_id.as_str()))
                    })
                    .map_err(engine)
                    .with_context(|| format!("reading {}", path.display()))?;
                by_table.entry(table).or_default().push(frame);
            }
        }
        let mut tables = BTreeSet::new();
        for (table, frames) in by_table {
            let mut frames = frames.into_iter();
            let first = frames.next().expect("a table has at least one run");
            // By name: runs written by different Scalpels versions may order or add columns
            // differently; a column a run lacks reads as null.
            frames
                .try_fold(first, DataFrame::union_by_name)
                .and_then(|all| ctx.register_table(table.as_str(), all.into_view()))
                .map_err(engine)
                .with_context(|| format!("table {table}"))?;
            tables.insert(table);
        }
        ctx.register_table("runs", Arc::new(runs_table(runs)?))
            .map_err(engine)?;
        Ok(Self { ctx, tables })
    }

    pub fn has(&self, table: &str) -> bool {
        self.tables.contains(table)
    }

    /// Runs a query and collects its rows.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let frame = self.ctx.sql(sql).await.map_err(engine)?;
        frame.collect().await.map_err(engine)
    }
}

/// `column` as nanosecond integers: DataFusion sums durations but neither divides them nor
/// takes their percentiles.
pub fn ns(column: &str) -> String {
    format!("arrow_cast({column}, 'Int64')")
}

/// DataFusion's message alone: its errors repeat themselves in their source chain.
pub fn engine(e: DataFusionError) -> anyhow::Error {
    anyhow!("{e}")
}

/// `runs`: host, service, run, status, started_at, ended_at, seconds, dir.
fn runs_table(runs: &[Run]) -> Result<MemTable> {
    let timestamp = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        Field::new("service", DataType::Utf8, false),
        Field::new("run", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("started_at", timestamp.clone(), false),
        Field::new("ended_at", timestamp, false),
        Field::new("seconds", DataType::Float64, false),
        Field::new("dir", DataType::Utf8, false),
    ]));
    let strings =
        |f: fn(&Run) -> String| Arc::new(StringArray::from_iter_values(runs.iter().map(f))) as _;
    let times = |f: fn(&Run) -> i64| {
        Arc::new(
            TimestampNanosecondArray::from_iter_values(runs.iter().map(f)).with_timezone("UTC"),
        ) as _
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(|r| r.host.clone()),
            strings(|r| r.service.clone()),
            strings(|r| r.run_id.clone()),
            strings(|r| r.status.clone()),
            times(|r| r.started_at.as_nanosecond() as i64),
            times(|r| r.ended_at.as_nanosecond() as i64),
            Arc::new(Float64Array::from_iter_values(
                runs.iter().map(|r| r.seconds),
            )),
            strings(|r| r.dir.display().to_string()),
        ],
    )?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}
