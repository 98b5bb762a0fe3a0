//! What is drawn or exported from a run's Python stacks.

pub mod differential;
pub mod export;
pub mod flamegraph;
pub mod folded;
pub mod pprof;
mod profile_proto;
pub mod weighed;
