//! Analysis of finished runs, apart from the loader (it needs no eBPF toolchain and no
//! privileges): `report`, `diff` and `sql` through DataFusion, flame graphs and profile
//! exports of the Python stacks, and `publish` to a fleet.

pub mod analysis;
pub mod cli;
mod output;
pub mod python;

use scalpels_run::{fleet, run};
