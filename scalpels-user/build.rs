//! Builds the eBPF programs for the BPF target with the `debian-bpf` toolchain (Debian's rustc
//! ships a prebuilt `core` for bpfel-unknown-none; see docs/development.md), so the loader can embed
//! them.
fn main() -> anyhow::Result<()> {
    let ebpf = aya_build::Package {
        name: "scalpels-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../scalpels-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::Custom("debian-bpf"))
}
