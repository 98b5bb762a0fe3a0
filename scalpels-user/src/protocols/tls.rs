//! TLS, part of the `protocols` tracer (userspace side of `scalpels-ebpf/src/protocols/
//! tls.rs`): attaches the uprobes to each libssl file that the dynamic loader's cache names or
//! a target process maps (a uprobe on a file fires in every process that maps it; the kernel
//! side keeps to target threads). What the probes read comes back as plaintext payloads of the
//! connections, in the protocols ring buffer.

use std::collections::BTreeSet;

use anyhow::Result;
use aya::{Ebpf, EbpfLoader};
use tracers::protocols::tls::{CONFIG_GLOBAL, TlsConfig, program};

use super::{
    library::{self, Soname},
    library_probes::{LibraryProbes, Probe},
};
use crate::uprobe_link;

/// OpenSSL's `libssl.so.3` and `libssl.so.1.1`.
const LIBSSL: Soname = b"libssl.so";

/// (function, program, whether it runs at the function's return). The `_ex` forms (OpenSSL
/// 1.1.1 and later; CPython 3.10+ calls them) are probed where defined.
const PROBES: [Probe; 12] = [
    ("SSL_read", program::READ, false),
    ("SSL_read", program::RETURN, true),
    ("SSL_read_ex", program::READ_EX, false),
    ("SSL_read_ex", program::RETURN, true),
    ("SSL_write", program::WRITE, false),
    ("SSL_write", program::RETURN, true),
    ("SSL_write_ex", program::WRITE_EX, false),
    ("SSL_write_ex", program::RETURN, true),
    ("SSL_do_handshake", program::HANDSHAKE, false),
    ("SSL_do_handshake", program::RETURN, true),
    ("SSL_set_fd", program::SET_FD, false),
    ("SSL_free", program::FREE, false),
];
const REQUIRED: [&str; 2] = ["SSL_read", "SSL_write"];

/// Where the probes find their registers, from BTF.
pub fn prepare() -> Result<TlsConfig> {
    let registers = uprobe_link::registers()?;
    Ok(TlsConfig {
        args: registers.args,
        ret: registers.ret,
        _pad: 0,
    })
}

pub fn set_globals<'a>(config: &'a TlsConfig, loader: &mut EbpfLoader<'a>) {
    loader.override_global(CONFIG_GLOBAL, config, true);
}

pub struct Tls {
    probes: LibraryProbes,
    /// Target processes whose libssl is probed.
    probed: BTreeSet<u32>,
}

impl Tls {
    /// Loads the programs and probes the libssl files of the dynamic loader's cache, so that
    /// a target's first TLS connection is seen whenever it starts.
    pub fn attach(ebpf: &mut Ebpf) -> Result<Self> {
        let mut probes = LibraryProbes::load(ebpf, "tls", &PROBES, &REQUIRED)?;
        for (file, path) in library::in_loader_cache(LIBSSL) {
            probes.probe(file, &path, "the dynamic loader's cache");
        }
        Ok(Self {
            probes,
            probed: BTreeSet::new(),
        })
    }

    /// Probes the libssl of each target process (another copy than the system's: a
    /// container's, a wheel's), looked for each interval until it has one; forgets those gone.
    pub fn watch(&mut self, pids: &BTreeSet<u32>) {
        self.probed.retain(|pid| pids.contains(pid));
        for &pid in pids {
            if self.probed.contains(&pid) {
                continue;
            }
            let Ok(Some(mapped)) = library::find(pid, LIBSSL) else {
                continue;
            };
            if self.probes.probed(mapped.file)
                || self
                    .probes
                    .probe(mapped.file, &mapped.path, &format!("process {pid}"))
            {
                self.probed.insert(pid);
            }
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "  tls: {} libssl files probed, {} target processes using one",
            self.probes.files_probed(),
            self.probed.len()
        )
    }
}
