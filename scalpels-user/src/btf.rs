//! Kernel struct layouts from the running kernel's BTF (`/sys/kernel/btf/vmlinux`), so the eBPF
//! programs read no offset that was compiled in.

use anyhow::{Context as _, Result, bail};
use btf_rs::{Btf, Type};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn load_vmlinux() -> Result<Btf> {
    Btf::from_file(VMLINUX_BTF).with_context(|| {
        format!("reading kernel BTF from {VMLINUX_BTF} (needs a kernel built with CONFIG_DEBUG_INFO_BTF)")
    })
}

/// Byte offset of the direct member `member` of `struct name`.
pub fn member_offset(btf: &Btf, name: &str, member: &str) -> Result<u32> {
    for ty in btf
        .resolve_types_by_name(name)
        .with_context(|| format!("BTF has no type {name}"))?
    {
        let Type::Struct(st) = ty else { continue };
        for m in &st.members {
            if btf.resolve_name(m).ok().as_deref() == Some(member) {
                if m.bitfield_size().is_some() {
                    bail!("struct {name}.{member} is a bitfield");
                }
                return Ok(m.bit_offset() / 8);
            }
        }
        bail!("struct {name} has no member {member}");
    }
    bail!("BTF has no struct {name}")
}
