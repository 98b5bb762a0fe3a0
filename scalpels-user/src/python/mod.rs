//! The `python` tracer's knowledge of CPython: where each version keeps threads, frames and
//! code objects (`versions`), reading them from a live process (`memory`, `code`), and turning
//! a sampled (code object, instruction) into function, file and line (`linetable`, `code`).

// Wired by the python tracer.
#![allow(dead_code)]

pub mod code;
pub mod linetable;
pub mod memory;
pub mod versions;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod test_pythons;
