//! Kernel struct layouts from the running kernel's BTF (`/sys/kernel/btf/vmlinux`), so the eBPF
//! programs read no offset that was compiled in.

use anyhow::{Context as _, Result, bail};
use btf_rs::{Btf, Struct, Type};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn load_vmlinux() -> Result<Btf> {
    Btf::from_file(VMLINUX_BTF).with_context(|| {
        format!("reading kernel BTF from {VMLINUX_BTF} (needs a kernel built with CONFIG_DEBUG_INFO_BTF)")
    })
}

/// Byte offset of member `member` of `struct name`, looking inside anonymous structs and
/// unions as C does (`file.f_inode` may sit in one, depending on the kernel version).
pub fn member_offset(btf: &Btf, name: &str, member: &str) -> Result<u32> {
    for ty in btf
        .resolve_types_by_name(name)
        .with_context(|| format!("BTF has no type {name}"))?
    {
        let Type::Struct(st) = ty else { continue };
        return find_member(btf, &st, member)?
            .with_context(|| format!("struct {name} has no member {member}"));
    }
    bail!("BTF has no struct {name}")
}

/// Bit offset of `member` in `st`, searching anonymous members depth first.
fn find_member(btf: &Btf, st: &Struct, member: &str) -> Result<Option<u32>> {
    for m in &st.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == member {
            // Structs with any bitfield give every member a size; 0 means a plain member.
            if m.bitfield_size().is_some_and(|bits| bits > 0) {
                bail!("member {member} is a bitfield");
            }
            return Ok(Some(m.bit_offset() / 8));
        }
        if name.is_empty()
            && let Ok(Type::Struct(inner) | Type::Union(inner)) = btf.resolve_chained_type(m)
            && let Some(offset) = find_member(btf, &inner, member)?
        {
            return Ok(Some(m.bit_offset() / 8 + offset));
        }
    }
    Ok(None)
}

/// Size in bytes of `struct name`.
pub fn struct_size(btf: &Btf, name: &str) -> Result<u32> {
    for ty in btf
        .resolve_types_by_name(name)
        .with_context(|| format!("BTF has no type {name}"))?
    {
        if let Type::Struct(st) = ty {
            return Ok(st.size() as u32);
        }
    }
    bail!("BTF has no struct {name}")
}

/// The C types of a raw tracepoint's arguments, in order (`bool`, `struct task_struct *`, ...):
/// the parameters of its `btf_trace_NAME` typedef after the first (the tracepoint's private
/// data). The kernel's BTF names no parameter, so arguments are told apart by their types.
pub fn raw_tracepoint_arg_types(btf: &Btf, tracepoint: &str) -> Result<Vec<String>> {
    let typedef = format!("btf_trace_{tracepoint}");
    let types = btf
        .resolve_types_by_name(&typedef)
        .with_context(|| format!("BTF has no type {typedef}"))?;
    let Some(Type::Typedef(def)) = types.into_iter().next() else {
        bail!("BTF's {typedef} is not a typedef");
    };
    let Type::Ptr(ptr) = btf.resolve_chained_type(&def)? else {
        bail!("BTF's {typedef} is not a function pointer");
    };
    let Type::FuncProto(proto) = btf.resolve_chained_type(&ptr)? else {
        bail!("BTF's {typedef} is not a function pointer");
    };
    proto
        .parameters
        .iter()
        .skip(1)
        .map(|param| c_type(btf, btf.resolve_chained_type(param)?))
        .collect()
}

/// How C spells `ty`, for the kinds of types tracepoint arguments have.
fn c_type(btf: &Btf, ty: Type) -> Result<String> {
    Ok(match ty {
        Type::Void => "void".into(),
        Type::Ptr(ptr) => match btf.resolve_chained_type(&ptr) {
            Ok(pointee) => format!("{} *", c_type(btf, pointee)?),
            Err(_) => "void *".into(),
        },
        Type::Struct(st) => format!("struct {}", btf.resolve_name(&st)?),
        Type::Union(un) => format!("union {}", btf.resolve_name(&un)?),
        Type::Const(c) => format!("const {}", c_type(btf, btf.resolve_chained_type(&c)?)?),
        Type::Int(int) => btf.resolve_name(&int)?,
        Type::Typedef(def) => btf.resolve_name(&def)?,
        Type::Enum(e) => format!("enum {}", btf.resolve_name(&e)?),
        _ => "?".into(),
    })
}
