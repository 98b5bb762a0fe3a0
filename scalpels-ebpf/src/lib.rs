//! Empty library target: scalpels-user has a build-dependency on this crate so cargo rebuilds
//! the loader when the programs change. The programs are the `scalpels` binary (src/main.rs).
#![no_std]
