//! The `protocols` tracer: SQL, RPC and HTTP conversations read from the target's socket
//! payloads.

pub mod records;
pub mod stream;
