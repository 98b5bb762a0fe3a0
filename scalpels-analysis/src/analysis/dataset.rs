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
    execution::{FunctionRegistry as _, context::SQLOptions},
    prelude::{DataFrame, ParquetReadOptions, SessionConfig, SessionContext, col, lit},
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
                // A damaged file (a run cut by a crash, a bad copy) is skipped with a warning
                // naming it: the other runs and tables still answer.
                let files: Vec<String> = super::runs::parquet_files(&path)?
                    .into_iter()
                    .filter(|file| match super::runs::footer(file) {
                        Ok(_) => true,
                        Err(e) => {
                            eprintln!("scalpels-trace: warning: skipping {e:#}");
                            false
                        }
                    })
                    .map(|file| file.display().to_string())
                    .collect();
                if files.is_empty() {
                    continue;
                }
                let frame = ctx
                    .read_parquet(files, ParquetReadOptions::default())
                    .await
                    .and_then(|frame| {
                        with_route(&ctx, &table, frame)?
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

    /// Plans a query. Only queries: `scalpels-trace sql` is often run as root (under sudo), and
    /// DataFusion's COPY TO, CREATE EXTERNAL TABLE and INSERT INTO would write any file, so DDL,
    /// DML and other statements (SET, ...) are refused before anything runs.
    pub async fn frame(&self, sql: &str) -> Result<DataFrame> {
        let plan = self
            .ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(engine)?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(engine)
            .context("only queries can be run (SELECT, WITH, EXPLAIN, SHOW, DESCRIBE)")?;
        self.ctx.execute_logical_plan(plan).await.map_err(engine)
    }

    /// Runs a query and collects its rows.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.frame(sql).await?.collect().await.map_err(engine)
    }
}

/// A run written before `http.parquet` had its `route` column gets it computed from `path`,
/// so `report` and `diff` group its requests the same way (a diff against a baseline traced
/// by an older Scalpels still compares endpoint by endpoint).
fn with_route(
    ctx: &SessionContext,
    table: &str,
    frame: DataFrame,
) -> datafusion::error::Result<DataFrame> {
    if table != "http" || frame.schema().has_column_with_unqualified_name("route") {
        return Ok(frame);
    }
    let route = ctx.udf("http_route")?.call(vec![col("path")]);
    frame.with_column("route", route)
}

/// The `sql` table's statement as `report` and `diff` show it: a command that carries none
/// (MySQL's `ping`, `quit`, `change_user`, ...) is named by its operation, `[ping]`, rather
/// than left blank. Aggregated with `max`, grouped by `SQL_BARE_COMMAND` besides the
/// fingerprint (all of them have the fingerprint of the empty statement).
pub const SQL_LABEL: &str =
    "CASE WHEN statement = '' THEN '[' || operation || ']' ELSE statement END";
pub const SQL_BARE_COMMAND: &str = "CASE WHEN statement = '' THEN operation END";

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

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    use arrow::array::AsArray as _;
    use parquet::arrow::ArrowWriter;

    use super::*;
    use crate::analysis::runs;

    fn write_run(dir: &Path, run: &str, http: &RecordBatch) {
        fs::create_dir_all(dir).unwrap();
        fs::write(
            dir.join("manifest.json"),
            format!(
                r#"{{"status": "complete", "started_at": "2026-11-25T03:15:00Z",
                     "ended_at": "2026-11-25T03:15:10Z",
                     "partition": {{"host": "h", "service": "keystone", "run": "{run}"}}}}"#
            ),
        )
        .unwrap();
        let file = fs::File::create(dir.join("http.parquet")).unwrap();
        let mut writer = ArrowWriter::try_new(file, http.schema(), None).unwrap();
        writer.write(http).unwrap();
        writer.close().unwrap();
    }

    #[tokio::test]
    async fn a_run_from_before_the_route_column_gets_its_routes_from_its_paths() {
        let root =
            std::env::temp_dir().join(format!("scalpels-dataset-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let user = "/v3/users/3f2b9c1e-8d4a-4b6f-9e2d-7a1c5b8e0f34";
        // An older run's table: `path` (a dictionary, as written), no `route`.
        let path_only = Schema::new(vec![Field::new(
            "path",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            false,
        )]);
        let paths: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> =
            [user, "/v3/users/42?x=1", "/v3"].into_iter().collect();
        let old = RecordBatch::try_new(Arc::new(path_only), vec![Arc::new(paths)]).unwrap();
        write_run(&root.join("old"), "old", &old);
        // A run of today's tracer: `path` and its `route`, as the protocols tracer writes them.
        let dictionary =
            || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let with_route = Schema::new(vec![
            Field::new("path", dictionary(), false),
            Field::new("route", dictionary(), true),
        ]);
        let column = |value: &str| -> arrow::array::ArrayRef {
            let array: arrow::array::DictionaryArray<arrow::datatypes::Int32Type> =
                [value].into_iter().collect();
            Arc::new(array)
        };
        let new = RecordBatch::try_new(
            Arc::new(with_route),
            vec![column(user), column(&wire::http::route(user))],
        )
        .unwrap();
        write_run(&root.join("new"), "new", &new);

        let routes = |runs: Vec<Run>| async move {
            let dataset = Dataset::open(&runs).await.unwrap();
            let batches = dataset
                .query("SELECT run || ' ' || route AS r FROM http ORDER BY r")
                .await
                .unwrap();
            batches
                .iter()
                .flat_map(|b| b.column(0).as_string::<i32>().iter())
                .map(|r| r.unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            routes(runs::discover(&[root.join("old")]).unwrap()).await,
            ["old /v3", "old /v3/users/{id}", "old /v3/users/{id}"]
        );
        // With a run that has the column: one table, routes from both.
        assert_eq!(
            routes(runs::discover(std::slice::from_ref(&root)).unwrap()).await,
            [
                "new /v3/users/{id}",
                "old /v3",
                "old /v3/users/{id}",
                "old /v3/users/{id}"
            ]
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
