//! What the protocol parsers produce, before it becomes rows of `sql`, `http` and `rpc`.
//! Times are UTC ns; latencies are `None` when the response was never seen.

use crate::stream::Side;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbSystem {
    Mysql,
    Postgresql,
    Sqlite,
}

/// One SQL command and its outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlRecord {
    /// When the request was sent (the first segment of it).
    pub time_ns: i64,
    pub tid: u32,
    pub db_system: DbSystem,
    /// `query`, `prepare`, `execute`, ... (the protocol's command).
    pub operation: &'static str,
    /// The statement as sent, literals included: the table normalizes it unless
    /// `--sql-literals` asks for the text. For a prepared statement's execution, the text
    /// that was prepared.
    pub statement: String,
    /// Rows returned (result set) or affected (OK / CommandComplete).
    pub rows: Option<u64>,
    /// MySQL error number or PostgreSQL SQLSTATE.
    pub error_code: Option<String>,
    pub error: Option<String>,
    /// From the request to the end of its response.
    pub latency_ns: Option<u64>,
    /// False when part of the response was not captured, so `rows` may be unknown.
    pub complete: bool,
    pub python_stack_id: Option<u64>,
}

/// One HTTP/1.x request and its response.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRecord {
    pub time_ns: i64,
    pub tid: u32,
    pub method: String,
    /// The request target, query string included.
    pub path: String,
    pub host: Option<String>,
    pub status: Option<u16>,
    /// Body bytes (Content-Length or the chunked total).
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub latency_ns: Option<u64>,
    pub python_stack_id: Option<u64>,
}

/// One AMQP 0-9-1 message published to or delivered by the broker, with its content.
#[derive(Clone, Debug, PartialEq)]
pub struct AmqpMessage {
    /// When its last frame was seen.
    pub time_ns: i64,
    pub tid: u32,
    /// Client for Basic.Publish, Server for Basic.Deliver / Get-Ok / Return.
    pub from: Side,
    /// `basic.publish`, `basic.deliver`, `basic.get-ok`, `basic.return`.
    pub method: &'static str,
    pub exchange: String,
    pub routing_key: String,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub content_type: Option<String>,
    /// The headers table, values as text (nested tables and arrays by their kind only).
    pub headers: Vec<(String, String)>,
    /// The body as captured (may be shorter than `body_size`).
    pub body: Vec<u8>,
    pub body_size: u64,
    pub python_stack_id: Option<u64>,
}
