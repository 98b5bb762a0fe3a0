fn main() -> anyhow::Result<()> {
    let mut ebpf = aya::Ebpf::load(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/scalpels")))?;
    for (name, p) in ebpf.programs_mut() {
        println!("{name}");
        match p {
            aya::programs::Program::RawTracePoint(p) => p.load()?,
            aya::programs::Program::TracePoint(p) => p.load()?,
            _ => {}
        }
    }
    Ok(())
}
