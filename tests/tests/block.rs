//! The block tracer, traced for real on a loop device with ext4: O_DIRECT writes attributed to
//! the process that made them, cross-checked against /proc/diskstats.

use std::{collections::HashMap, time::Duration};

use scalpels_tests::*;

const CHUNKS: u64 = 64;
const BYTES: u64 = CHUNKS * 64 * 1024;

fn write_traced(fs: &LoopFs, test: &str, extra: &[&str]) -> (std::path::PathBuf, u64) {
    let out = out_dir(test);
    let file = fs.path("data");
    let mut args = vec!["--out", out.to_str().unwrap(), "--tracers", "block"];
    args.extend(extra);
    let written = BYTES.to_string();
    let script = workload("direct_write.py");
    args.extend(["--", python(), &script, file.to_str().unwrap(), &written]);
    let output = trace(&args, Duration::from_secs(60));
    let run = run_dir(&output);
    assert_eq!(printed(&output.stdout, "written"), [BYTES]);
    (run, printed(&output.stdout, "pid")[0])
}

#[test]
fn direct_writes_are_attributed_and_match_diskstats() {
    let fs = LoopFs::new("direct", 64);
    fs.settle();
    let before = fs.diskstats_sectors();
    let (run, pid) = write_traced(&fs, "block-direct", &["--block-all"]);
    let after = fs.diskstats_sectors();

    let io = read_table(&run.join("block_io.parquet"));
    let (device, op, bytes, pids) = (
        strings(&io, "device"),
        strings(&io, "op"),
        u64s(&io, "bytes"),
        u64s(&io, "pid"),
    );
    let (target, meta) = (bools(&io, "target"), bools(&io, "meta"));
    let on_device: Vec<usize> = (0..io.num_rows())
        .filter(|&i| device[i] == fs.name())
        .collect();
    // The workload's own data writes: exactly what it wrote.
    let data: u64 = on_device
        .iter()
        .filter(|&&i| op[i] == "write" && pids[i] == pid && target[i] && !meta[i])
        .map(|&i| bytes[i])
        .sum();
    assert_eq!(data, BYTES, "O_DIRECT data writes of pid {pid}");
    // Everything on the device (journal and metadata too, under --block-all) matches the
    // kernel's own accounting.
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for &i in &on_device {
        *seen.entry(op[i].as_str()).or_default() += bytes[i];
    }
    assert_eq!(
        seen.get("write").copied().unwrap_or(0),
        (after.1 - before.1) * 512
    );
    assert_eq!(
        seen.get("read").copied().unwrap_or(0),
        (after.0 - before.0) * 512
    );

    // Latency is start to completion, split into queue and service.
    let (latency, queue, service) = (
        i64s(&io, "latency"),
        i64s(&io, "queue_latency"),
        i64s(&io, "service_latency"),
    );
    for &i in &on_device {
        assert!(latency[i] > 0 && queue[i] >= 0 && service[i] > 0);
        assert_eq!(queue[i] + service[i], latency[i]);
    }

    // The per-interval statistics count the same requests and bytes.
    let stats = read_table(&run.join("block_io_stats.parquet"));
    let (s_device, s_op, s_bytes, s_requests) = (
        strings(&stats, "device"),
        strings(&stats, "op"),
        u64s(&stats, "bytes"),
        u64s(&stats, "requests"),
    );
    let stats_writes: u64 = (0..stats.num_rows())
        .filter(|&i| s_device[i] == fs.name() && s_op[i] == "write")
        .map(|i| s_bytes[i])
        .sum();
    assert_eq!(stats_writes, seen["write"]);
    let stats_requests: u64 = (0..stats.num_rows())
        .filter(|&i| s_device[i] == fs.name())
        .map(|i| s_requests[i])
        .sum();
    assert_eq!(stats_requests, on_device.len() as u64);

    let manifest = manifest(&run);
    assert_eq!(manifest["tracers"][0]["name"], "block");
    assert_eq!(manifest["tracers"][0]["drops"]["events_dropped"], 0);
    assert_eq!(manifest["tables"]["block_io"]["rows"], io.num_rows() as u64);
}

#[test]
fn only_targets_by_default_and_statistics_without_events() {
    let fs = LoopFs::new("stats", 64);
    let (run, pid) = write_traced(&fs, "block-stats", &["--block-events", "off"]);
    assert_eq!(read_table(&run.join("block_io.parquet")).num_rows(), 0);
    let stats = read_table(&run.join("block_io_stats.parquet"));
    let (device, op, bytes) = (
        strings(&stats, "device"),
        strings(&stats, "op"),
        u64s(&stats, "bytes"),
    );
    let writes: u64 = (0..stats.num_rows())
        .filter(|&i| device[i] == fs.name() && op[i] == "write")
        .map(|i| bytes[i])
        .sum();
    // The data, plus at most the metadata the workload's fsync wrote itself (the journal
    // thread's commits are not the target's).
    assert!(
        (BYTES..BYTES + (1 << 20)).contains(&writes),
        "pid {pid} wrote {writes} bytes"
    );
}
