//! Arrow schemas and batch builders of `connections.parquet`, `sql.parquet`, `http.parquet`
//! and `rpc.parquet` (the contract is in docs/tracers/protocols.md).

use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{
        ArrayRef, BooleanArray, DurationNanosecondArray, Int32Array, RecordBatch, StringArray,
        StringDictionaryBuilder, UInt16Array, UInt32Array, UInt64Array,
    },
    datatypes::{DataType, Field, Int32Type, Schema, SchemaRef},
};

use rustc_hash::FxHashMap;
use wire::{
    http,
    oslo::RpcRecord,
    records::{DbSystem, HttpRecord, SqlRecord},
    sql_text,
};

use crate::run::columns::{dictionary, duration, timestamp, timestamps};

/// `connections.parquet`: one row per socket connection seen.
pub fn connections_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("conn_id", DataType::UInt64, false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("fd", DataType::Int32, false),
        Field::new("role", dictionary(), false),
        Field::new("family", dictionary(), false),
        Field::new("local_addr", DataType::Utf8, false),
        Field::new("remote_addr", DataType::Utf8, false),
        Field::new("protocol", dictionary(), false),
        Field::new("tls", DataType::Boolean, false),
        Field::new("opened", timestamp(), true),
        Field::new("closed", timestamp(), true),
        Field::new("bytes_sent", DataType::UInt64, false),
        Field::new("bytes_received", DataType::UInt64, false),
        Field::new("bytes_not_captured", DataType::UInt64, false),
    ]))
}

/// One connection, as it ended (or as it was when the run ended).
pub struct ConnectionRow {
    pub conn_id: u64,
    pub pid: u32,
    pub fd: u32,
    pub role: &'static str,
    pub family: &'static str,
    pub local_addr: String,
    pub remote_addr: String,
    pub protocol: &'static str,
    /// Whether its payloads were TLS, read in plaintext through the TLS library.
    pub tls: bool,
    /// UTC ns.
    pub opened: Option<i64>,
    pub closed: Option<i64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub bytes_not_captured: u64,
}

pub(super) fn dictionary_of<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut builder = StringDictionaryBuilder::<Int32Type>::new();
    for value in values {
        builder.append_option(value);
    }
    Arc::new(builder.finish())
}

pub(super) fn timestamps_of(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    let mut builder = timestamps();
    for value in values {
        builder.append_option(value);
    }
    Arc::new(builder.finish())
}

pub(super) fn durations_of(values: impl Iterator<Item = Option<u64>>) -> ArrayRef {
    Arc::new(
        values
            .map(|v| v.map(|ns| ns as i64))
            .collect::<DurationNanosecondArray>(),
    )
}

pub fn connections_batch(rows: &[ConnectionRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.conn_id).collect::<UInt64Array>()),
        Arc::new(rows.iter().map(|r| r.pid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|r| r.fd as i32).collect::<Int32Array>()),
        dictionary_of(rows.iter().map(|r| Some(r.role))),
        dictionary_of(rows.iter().map(|r| Some(r.family))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.local_addr.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.remote_addr.as_str()),
        )),
        dictionary_of(rows.iter().map(|r| Some(r.protocol))),
        Arc::new(rows.iter().map(|r| Some(r.tls)).collect::<BooleanArray>()),
        timestamps_of(rows.iter().map(|r| r.opened)),
        timestamps_of(rows.iter().map(|r| r.closed)),
        Arc::new(rows.iter().map(|r| r.bytes_sent).collect::<UInt64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.bytes_received)
                .collect::<UInt64Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.bytes_not_captured)
                .collect::<UInt64Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(connections_schema(), columns)?)
}

/// `sql.parquet`: one row per SQL command.
pub fn sql_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("conn_id", DataType::UInt64, true),
        Field::new("db_system", dictionary(), false),
        Field::new("operation", dictionary(), false),
        Field::new("statement", dictionary(), false),
        Field::new("fingerprint", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, true),
        Field::new("error_code", dictionary(), true),
        Field::new("error", DataType::Utf8, true),
        Field::new("latency", duration(), true),
        Field::new("complete", DataType::Boolean, false),
        Field::new("python_stack_id", DataType::UInt64, true),
    ]))
}

/// One SQL command, with the statement as stored (normalized unless `--sql-literals`) and
/// the fingerprint of its normalized form.
pub struct SqlRow {
    pub pid: u32,
    /// None for sqlite, which has no connection.
    pub conn_id: Option<u64>,
    /// Its `statement` as stored: normalized unless `--sql-literals`.
    pub record: SqlRecord,
    pub fingerprint: u64,
}

/// Statements without literals remembered, at most: past that they are forgotten and learnt
/// again.
const PLAIN_MAX: usize = 4096;

/// Makes the rows of SQL commands: normalizes and fingerprints their statements, lexing a
/// statement without literals only once (a service sends the same pings, `ROLLBACK`s,
/// `COMMIT`s and statements with placeholders over and over; one with literals is new each
/// time and not remembered).
pub struct SqlRows {
    /// `--sql-literals`: statements stored as sent.
    literals: bool,
    /// Fingerprints of statements that normalize to themselves.
    plain: FxHashMap<String, u64>,
}

impl SqlRows {
    /// `--sql-literals`: literals (of statements, and of cache keys) stored as sent.
    pub fn literals(&self) -> bool {
        self.literals
    }

    pub fn new(literals: bool) -> Self {
        Self {
            literals,
            plain: FxHashMap::default(),
        }
    }

    pub fn row(&mut self, pid: u32, conn_id: Option<u64>, mut record: SqlRecord) -> SqlRow {
        let fingerprint = match self.plain.get(record.statement.as_str()) {
            // Stored as sent either way: it normalizes to itself.
            Some(&fingerprint) => fingerprint,
            None => {
                let normalized = sql_text::normalize(&record.statement);
                let fingerprint = sql_text::fingerprint(&normalized);
                if normalized == record.statement {
                    if self.plain.len() >= PLAIN_MAX {
                        self.plain.clear();
                    }
                    self.plain.insert(normalized, fingerprint);
                } else if !self.literals {
                    record.statement = normalized;
                }
                fingerprint
            }
        };
        SqlRow {
            pid,
            conn_id,
            record,
            fingerprint,
        }
    }
}

fn db_system(system: DbSystem) -> &'static str {
    match system {
        DbSystem::Mysql => "mysql",
        DbSystem::Postgresql => "postgresql",
        DbSystem::Sqlite => "sqlite",
    }
}

pub fn sql_batch(rows: &[SqlRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        timestamps_of(rows.iter().map(|r| Some(r.record.time_ns))),
        Arc::new(rows.iter().map(|r| r.pid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|r| r.record.tid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|r| r.conn_id).collect::<UInt64Array>()),
        dictionary_of(rows.iter().map(|r| Some(db_system(r.record.db_system)))),
        dictionary_of(rows.iter().map(|r| Some(r.record.operation))),
        dictionary_of(rows.iter().map(|r| Some(r.record.statement.as_str()))),
        Arc::new(rows.iter().map(|r| r.fingerprint).collect::<UInt64Array>()),
        Arc::new(rows.iter().map(|r| r.record.rows).collect::<UInt64Array>()),
        dictionary_of(rows.iter().map(|r| r.record.error_code.as_deref())),
        Arc::new(
            rows.iter()
                .map(|r| r.record.error.as_deref())
                .collect::<StringArray>(),
        ),
        durations_of(rows.iter().map(|r| r.record.latency_ns)),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.record.complete))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|r| r.record.python_stack_id)
                .collect::<UInt64Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(sql_schema(), columns)?)
}

/// `http.parquet`: one row per request.
pub fn http_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("conn_id", DataType::UInt64, false),
        Field::new("role", dictionary(), false),
        Field::new("method", dictionary(), false),
        Field::new("path", dictionary(), false),
        Field::new("route", dictionary(), false),
        Field::new("host_header", dictionary(), true),
        Field::new("status", DataType::UInt16, true),
        Field::new("request_bytes", DataType::UInt64, false),
        Field::new("response_bytes", DataType::UInt64, false),
        Field::new("latency", duration(), true),
        Field::new("python_stack_id", DataType::UInt64, true),
    ]))
}

/// The connection a record was parsed from.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub pid: u32,
    pub conn_id: u64,
    /// The traced process's end.
    pub role: &'static str,
}

pub fn http_batch(rows: &[(Origin, HttpRecord)]) -> Result<RecordBatch> {
    let routes: Vec<String> = rows.iter().map(|(_, r)| http::route(&r.path)).collect();
    let columns: Vec<ArrayRef> = vec![
        timestamps_of(rows.iter().map(|(_, r)| Some(r.time_ns))),
        Arc::new(rows.iter().map(|(o, _)| o.pid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|(_, r)| r.tid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|(o, _)| o.conn_id).collect::<UInt64Array>()),
        dictionary_of(rows.iter().map(|(o, _)| Some(o.role))),
        dictionary_of(rows.iter().map(|(_, r)| Some(r.method.as_str()))),
        dictionary_of(rows.iter().map(|(_, r)| Some(r.path.as_str()))),
        dictionary_of(routes.iter().map(|route| Some(route.as_str()))),
        dictionary_of(rows.iter().map(|(_, r)| r.host.as_deref())),
        Arc::new(rows.iter().map(|(_, r)| r.status).collect::<UInt16Array>()),
        Arc::new(
            rows.iter()
                .map(|(_, r)| r.request_bytes)
                .collect::<UInt64Array>(),
        ),
        Arc::new(
            rows.iter()
                .map(|(_, r)| r.response_bytes)
                .collect::<UInt64Array>(),
        ),
        durations_of(rows.iter().map(|(_, r)| r.latency_ns)),
        Arc::new(
            rows.iter()
                .map(|(_, r)| r.python_stack_id)
                .collect::<UInt64Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(http_schema(), columns)?)
}

/// `rpc.parquet`: one row per oslo.messaging message sent or received.
pub fn rpc_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("conn_id", DataType::UInt64, false),
        Field::new("direction", dictionary(), false),
        Field::new("exchange", dictionary(), false),
        Field::new("routing_key", dictionary(), false),
        Field::new("kind", dictionary(), false),
        Field::new("method", dictionary(), true),
        Field::new("namespace", dictionary(), true),
        Field::new("version", dictionary(), true),
        Field::new("msg_id", DataType::Utf8, true),
        Field::new("reply_q", dictionary(), true),
        Field::new("latency", duration(), true),
        Field::new("failure", DataType::Utf8, true),
        Field::new("body_bytes", DataType::UInt64, false),
        Field::new("python_stack_id", DataType::UInt64, true),
    ]))
}

pub fn rpc_batch(rows: &[RpcRecord]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        timestamps_of(rows.iter().map(|r| Some(r.time_ns))),
        Arc::new(rows.iter().map(|r| r.pid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|r| r.tid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|r| r.conn_id).collect::<UInt64Array>()),
        dictionary_of(rows.iter().map(|r| Some(r.direction.as_str()))),
        dictionary_of(rows.iter().map(|r| Some(r.exchange.as_str()))),
        dictionary_of(rows.iter().map(|r| Some(r.routing_key.as_str()))),
        dictionary_of(rows.iter().map(|r| Some(r.kind.as_str()))),
        dictionary_of(rows.iter().map(|r| r.method.as_deref())),
        dictionary_of(rows.iter().map(|r| r.namespace.as_deref())),
        dictionary_of(rows.iter().map(|r| r.version.as_deref())),
        Arc::new(
            rows.iter()
                .map(|r| r.msg_id.as_deref())
                .collect::<StringArray>(),
        ),
        dictionary_of(rows.iter().map(|r| r.reply_q.as_deref())),
        durations_of(rows.iter().map(|r| r.latency_ns)),
        Arc::new(
            rows.iter()
                .map(|r| r.failure.as_deref())
                .collect::<StringArray>(),
        ),
        Arc::new(rows.iter().map(|r| r.body_bytes).collect::<UInt64Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.python_stack_id)
                .collect::<UInt64Array>(),
        ),
    ];
    Ok(RecordBatch::try_new(rpc_schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(statement: &str) -> SqlRecord {
        SqlRecord {
            time_ns: 0,
            tid: 1,
            db_system: DbSystem::Mysql,
            operation: "query",
            statement: statement.into(),
            rows: None,
            error_code: None,
            error: None,
            latency_ns: None,
            complete: true,
            python_stack_id: None,
        }
    }

    #[test]
    fn remembered_statements_are_stored_as_those_normalized_each_time() {
        for literals in [false, true] {
            let mut rows = SqlRows::new(literals);
            for statement in ["ROLLBACK", "SELECT 1", "SELECT a FROM t WHERE id = 'x'"] {
                let fresh = rows.row(1, None, record(statement));
                let again = rows.row(1, None, record(statement));
                let normalized = sql_text::normalize(statement);
                let stored = if literals { statement } else { &normalized };
                for row in [fresh, again] {
                    assert_eq!(row.record.statement, stored, "{statement}");
                    assert_eq!(row.fingerprint, sql_text::fingerprint(&normalized));
                }
            }
            // Only the one that normalizes to itself is remembered.
            assert_eq!(rows.plain.len(), 1, "{:?}", rows.plain);
        }
    }
}
