//! Protocol parsers for the `protocols` tracer, kept apart from the loader so they can be
//! unit-tested and fuzzed without eBPF: each takes the segments of one connection and returns
//! records. Nothing here does I/O, and no input makes it panic or loop.

pub mod amqp;
mod amqp_frames;
mod cache_exchange;
pub mod detect;
pub mod http;
mod http_message;
mod json_scan;
pub mod memcached;
pub mod mysql;
mod origin;
pub mod oslo;
pub mod postgres;
pub mod records;
pub mod redis;
mod sql_conversation;
mod sql_framing;
pub mod sql_text;
pub mod stream;
mod text_framing;
