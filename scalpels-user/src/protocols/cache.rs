//! `cache.parquet`: one row per memcached or Redis command of the targets, with its reply:
//! hits of reads, value bytes, latency and errors; keys stored with their ids replaced
//! (`cache_key`), unless `--sql-literals` keeps literals.

use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array, UInt64Array},
    datatypes::{DataType, Field, Schema, SchemaRef},
};
use wire::records::{CacheRecord, CacheSystem};

use super::{
    cache_key,
    tables::{dictionary_of, durations_of, timestamps_of},
};
use crate::run::columns::{dictionary, duration, timestamp};

/// Keys longer than this are cut (on a character boundary): enough to tell keys apart,
/// short enough for the dictionary.
const KEY_CHARS: usize = 200;

pub fn cache_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time", timestamp(), false),
        Field::new("pid", DataType::UInt32, false),
        Field::new("tid", DataType::UInt32, false),
        Field::new("conn_id", DataType::UInt64, false),
        Field::new("system", dictionary(), false),
        Field::new("command", dictionary(), false),
        Field::new("key", dictionary(), true),
        Field::new("keys", DataType::UInt32, false),
        Field::new("hit", DataType::Boolean, true),
        Field::new("hits", DataType::UInt32, true),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("latency", duration(), true),
        Field::new("error", DataType::Utf8, true),
        Field::new("complete", DataType::Boolean, false),
        Field::new("python_stack_id", DataType::UInt64, true),
    ]))
}

/// One cache command, its key as stored.
pub struct CacheRow {
    pub pid: u32,
    pub conn_id: u64,
    pub record: CacheRecord,
    pub key: Option<String>,
}

impl CacheRow {
    /// The row of `record`; its key with ids replaced unless `literals`.
    pub fn new(pid: u32, conn_id: u64, record: CacheRecord, literals: bool) -> Self {
        let key = record.key.as_deref().map(|key| {
            let key: String = key.chars().take(KEY_CHARS).collect();
            if literals {
                key
            } else {
                cache_key::redact(&key)
            }
        });
        CacheRow {
            pid,
            conn_id,
            record,
            key,
        }
    }
}

/// The `system` column's name of a cache server.
pub fn system(system: CacheSystem) -> &'static str {
    match system {
        CacheSystem::Memcached => "memcached",
        CacheSystem::Redis => "redis",
    }
}

pub fn cache_batch(rows: &[CacheRow]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        timestamps_of(rows.iter().map(|r| Some(r.record.time_ns))),
        Arc::new(rows.iter().map(|r| r.pid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|r| r.record.tid).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|r| r.conn_id).collect::<UInt64Array>()),
        dictionary_of(rows.iter().map(|r| Some(system(r.record.system)))),
        dictionary_of(rows.iter().map(|r| Some(r.record.command.as_str()))),
        dictionary_of(rows.iter().map(|r| r.key.as_deref())),
        Arc::new(rows.iter().map(|r| r.record.keys).collect::<UInt32Array>()),
        Arc::new(
            rows.iter()
                .map(|r| r.record.hits.map(|hits| hits == r.record.keys))
                .collect::<BooleanArray>(),
        ),
        Arc::new(rows.iter().map(|r| r.record.hits).collect::<UInt32Array>()),
        Arc::new(rows.iter().map(|r| r.record.bytes).collect::<UInt64Array>()),
        durations_of(rows.iter().map(|r| r.record.latency_ns)),
        Arc::new(
            rows.iter()
                .map(|r| r.record.error.as_deref())
                .collect::<StringArray>(),
        ),
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
    Ok(RecordBatch::try_new(cache_schema(), columns)?)
}
