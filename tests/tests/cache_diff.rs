//! `diff` on cache traffic: the same reads of a real memcached, once with every key there and
//! once with half of them gone, are the same commands at another hit ratio; the fall of the
//! ratio is the regression (a test binary of its own: its memcached serves no other test).

use std::time::Duration;

use scalpels_tests::{servers, *};

/// Traces `cache_hits.py` with `stored` of its 20 hot keys in memcached; the run.
fn traced_reads(stored: u32) -> std::path::PathBuf {
    let memcached = servers::memcached();
    let out = out_dir(&format!("cache-hits-{stored}"));
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "protocols",
            "--",
            python(),
            &workload("cache_hits.py"),
            &memcached.port.to_string(),
            &stored.to_string(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        printed(&output.stdout, "hits"),
        [u64::from(stored) * 10],
        "{}",
        stderr(&output)
    );
    run_dir(&output)
}

/// `diff BEFORE AFTER` as JSON, with its exit status (1 when it found a regression).
fn diff(before: &str, after: &str) -> (Option<i32>, serde_json::Value) {
    let output = std::process::Command::new(scalpels_trace())
        .args(["diff", before, after, "--format", "json", "--top", "100"])
        .output()
        .expect("scalpels-trace runs");
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("diff's output is not JSON ({e}): {}", stderr(&output)));
    (output.status.code(), json)
}

#[test]
fn diff_judges_a_falling_hit_ratio() {
    let (warm, cold) = (traced_reads(20), traced_reads(10));
    let (warm, cold) = (warm.to_str().unwrap(), cold.to_str().unwrap());
    let (status, found) = diff(warm, cold);
    assert_eq!(status, Some(1), "{found:#}");
    let regressions = found["regressions"].as_array().unwrap();
    let gets: Vec<&serde_json::Value> = regressions
        .iter()
        .filter(|r| r["dimension"] == "cache" && r["label"][1] == "get")
        .collect();
    assert_eq!(gets.len(), 1, "{regressions:#?}");
    assert_eq!(
        gets[0]["label"],
        serde_json::json!(["memcached", "get", "hot?"])
    );
    let reasons = gets[0]["reasons"].to_string();
    assert!(reasons.contains("hit ratio 100% → 50%"), "{reasons}");
    // The other way round, the ratio rose: better, not a regression (the latencies of runs
    // this short on a busy machine may differ either way: only the ratio is asserted).
    let (_, back) = diff(cold, warm);
    let ratio_regressions: Vec<&serde_json::Value> = back["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reasons"].to_string().contains("hit ratio"))
        .collect();
    assert_eq!(ratio_regressions, Vec::<&serde_json::Value>::new());
}
