//! What both sides of Scalpels agree on: the `#[repr(C)]` records that cross the kernel/user
//! boundary, the names of maps and globals, and the catalogue of tracers.
//!
//! Every struct here is `#[repr(C)]` with explicit padding fields, so its layout is the same
//! for the BPF target and the host and no byte is left uninitialised.
#![no_std]

pub mod block;
pub mod catalogue;
pub mod counters;
pub mod files;
pub mod histogram;
pub mod hooks;
pub mod protocols;
pub mod python;
pub mod python_calls;
pub mod syscalls;
pub mod target;

/// Implements `aya::Pod` for records read from or written to maps by the loader.
#[macro_export]
macro_rules! user_pod {
    ($($ty:ty),* $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: the type is #[repr(C)], Copy, and has no implicit padding.
            unsafe impl aya::Pod for $ty {}
        )*
    };
}
