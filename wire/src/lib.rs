//! Protocol parsers for the `protocols` tracer, kept apart from the loader so they can be
//! unit-tested and fuzzed without eBPF: each takes the segments of one connection and returns
//! records. Nothing here does I/O, and no input makes it panic or loop.

pub mod mysql;
mod origin;
pub mod postgres;
pub mod records;
pub mod sql_text;
pub mod stream;
