//! What the protocol parsers produce, before it becomes rows of `sql`, `http`, `rpc` and
//! `cache`.
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

/// Which cache server a `CacheRecord` is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheSystem {
    Memcached,
    Redis,
}

/// One cache command and its reply.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheRecord {
    /// When the request was sent (its first segment), UTC ns.
    pub time_ns: i64,
    pub tid: u32,
    pub system: CacheSystem,
    /// The command in lower case: get, gets, set, delete, incr, mg, ms, ... / get, set, mget,
    /// hget, del, ...
    pub command: String,
    /// The first key, as sent (lossy UTF-8, at most 250 bytes kept); None for commands
    /// without a key.
    pub key: Option<String>,
    /// How many keys the command names (multi-key gets, MGET, DEL k1 k2, ...); 0 without
    /// keys.
    pub keys: u32,
    /// For reads (memcached get/gets/gat/gats/mg, Redis GET/MGET/HGET/HMGET/GETEX/GETDEL/
    /// EXISTS...): how many of the keys were found; None for other commands.
    pub hits: Option<u32>,
    /// Value bytes moved: the data block of a storage command, the values of a read's reply.
    pub bytes: u64,
    /// From the request to the end of its reply; None when the reply never came.
    pub latency_ns: Option<u64>,
    /// The server's error reply (memcached ERROR / CLIENT_ERROR ... / SERVER_ERROR ...,
    /// Redis -ERR ...), if any.
    pub error: Option<String>,
    /// False when part of the request or reply was not captured (so hits/bytes may be
    /// unknown).
    pub complete: bool,
    pub python_stack_id: Option<u64>,
}
