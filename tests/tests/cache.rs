//! The protocols tracer on real cache servers: memcached through pymemcache and Redis
//! through redis-py (tests/workloads/cache_client.py). `cache.parquet` must count every
//! command the workload made, and its hits and misses must equal what the servers counted
//! themselves (memcached's `stats`, Redis's `INFO`).

use std::{collections::BTreeMap, time::Duration};

use scalpels_tests::{servers, *};

/// One row of `cache.parquet`, the columns the test checks.
#[derive(Debug)]
struct CacheRow {
    system: String,
    command: String,
    key: Option<String>,
    keys: u64,
    hits: Option<u64>,
    error: Option<String>,
    latency: Option<i64>,
}

fn rows(run: &std::path::Path) -> Vec<CacheRow> {
    let batch = read_table(&run.join("cache.parquet"));
    let (systems, commands) = (strings(&batch, "system"), strings(&batch, "command"));
    let (keys, hits) = (u64s(&batch, "keys"), optional_u64s(&batch, "hits"));
    let (key, error) = (
        optional_strings(&batch, "key"),
        optional_strings(&batch, "error"),
    );
    let latency = optional_i64s(&batch, "latency");
    (0..batch.num_rows())
        .map(|i| CacheRow {
            system: systems[i].clone(),
            command: commands[i].clone(),
            key: key[i].clone(),
            keys: keys[i],
            hits: hits[i],
            error: error[i].clone(),
            latency: latency[i],
        })
        .collect()
}

fn count(rows: &[&CacheRow]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row.command.clone()).or_default() += 1;
    }
    counts
}

#[test]
fn memcached_and_redis_commands_hits_and_misses_are_counted_exactly() {
    let (memcached, redis) = (servers::memcached(), servers::redis());
    let (mc_before, redis_before) = (memcached.stats(), redis.info());
    let out = out_dir("cache");
    let output = trace(
        &[
            "--out",
            out.to_str().unwrap(),
            "--tracers",
            "protocols",
            "--",
            python(),
            &workload("cache_client.py"),
            &memcached.port.to_string(),
            &redis.port.to_string(),
        ],
        Duration::from_secs(120),
    );
    let run = run_dir(&output);
    let (mc_after, redis_after) = (memcached.stats(), redis.info());
    let delta = |after: &std::collections::HashMap<String, u64>,
                 before: &std::collections::HashMap<String, u64>,
                 name: &str| {
        after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)
    };
    let rows = rows(&run);

    let mc: Vec<&CacheRow> = rows.iter().filter(|r| r.system == "memcached").collect();
    assert_eq!(
        count(&mc),
        BTreeMap::from([
            ("delete".into(), 1),
            ("get".into(), 9),
            ("incr".into(), 1),
            ("set".into(), 8),
        ]),
        "{mc:#?}"
    );
    let gets: Vec<&&CacheRow> = mc.iter().filter(|r| r.command == "get").collect();
    let hits: u64 = gets.iter().map(|r| r.hits.expect("a read has hits")).sum();
    let keys: u64 = gets.iter().map(|r| r.keys).sum();
    assert_eq!((hits, keys - hits), (7, 4));
    assert_eq!(hits, delta(&mc_after, &mc_before, "get_hits"));
    assert_eq!(keys - hits, delta(&mc_after, &mc_before, "get_misses"));
    assert_eq!(delta(&mc_after, &mc_before, "cmd_set"), 8);
    let multi = gets
        .iter()
        .find(|r| r.keys == 3)
        .expect("the multi-key get");
    assert_eq!(multi.hits, Some(2));
    // Replies the client waited for have a latency; `noreply` sets have none.
    let sets: Vec<&&CacheRow> = mc.iter().filter(|r| r.command == "set").collect();
    assert_eq!(sets.iter().filter(|r| r.latency.is_some()).count(), 6);
    assert!(gets.iter().all(|r| r.latency.is_some_and(|ns| ns > 0)));
    assert!(mc.iter().all(|r| r.error.is_none()), "{mc:#?}");

    let rd: Vec<&CacheRow> = rows.iter().filter(|r| r.system == "redis").collect();
    let counts = count(&rd);
    // redis-py's incr() sends INCRBY.
    for (command, n) in [
        ("set", 6),
        ("get", 8),
        ("mget", 1),
        ("incrby", 11),
        ("del", 1),
    ] {
        assert_eq!(counts.get(command), Some(&n), "{command}: {counts:?}");
        assert_eq!(
            delta(&redis_after, &redis_before, &format!("cmdstat_{command}")),
            n as u64,
            "{command} as the server counted it"
        );
    }
    let reads: Vec<&&CacheRow> = rd
        .iter()
        .filter(|r| r.command == "get" || r.command == "mget")
        .collect();
    let hits: u64 = reads.iter().map(|r| r.hits.expect("a read has hits")).sum();
    let keys: u64 = reads.iter().map(|r| r.keys).sum();
    assert_eq!((hits, keys - hits), (7, 4));
    assert_eq!(hits, delta(&redis_after, &redis_before, "keyspace_hits"));
    assert_eq!(
        keys - hits,
        delta(&redis_after, &redis_before, "keyspace_misses")
    );
    // redis-py's connection handshake (CLIENT SETINFO, ...) may be refused by an older
    // server: those errors are real, and not the workload's.
    let failed: Vec<&&CacheRow> = rd
        .iter()
        .filter(|r| r.error.is_some() && r.command != "client")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].command, "incrby");
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap()
            .contains("not an integer"),
        "{failed:#?}"
    );
    assert!(rd.iter().all(|r| r.latency.is_some()), "{rd:#?}");
    // Keys are stored with their ids replaced, like SQL literals.
    let get_keys: Vec<Option<&str>> = rd
        .iter()
        .filter(|r| r.command == "get")
        .map(|r| r.key.as_deref())
        .collect();
    assert!(
        get_keys
            .iter()
            .all(|k| *k == Some("a?") || *k == Some("b?")),
        "{get_keys:?}"
    );

    // `report` has a cache section: per (system, command, key) with the hit ratio of reads.
    let run_arg = run.to_str().unwrap();
    let report = analysis_json(&["report", run_arg, "--format", "json", "--top", "50"]);
    let cache = keyed_rows(&report, "sections", "cache");
    let row = |system: &str, command: &str, key: &str| {
        cache
            .iter()
            .find(|r| r["system"] == system && r["command"] == command && r["key"] == key)
            .unwrap_or_else(|| panic!("no {system} {command} {key} in {cache:#?}"))
    };
    // memcached: five single gets and the multi-key one name k?: 7 of 8 keys found.
    assert_eq!(row("memcached", "get", "k?")["commands"], 6);
    assert_eq!(row("memcached", "get", "k?")["hit_pct"], 87.5);
    assert_eq!(row("memcached", "get", "missing?")["hit_pct"], 0.0);
    assert_eq!(row("redis", "incrby", "word")["errors"], 1);

    // `diff` judges cache commands like HTTP endpoints: a run against itself has its rows and
    // no regression.
    let diff = analysis_json(&["diff", run_arg, run_arg, "--format", "json", "--top", "100"]);
    let judged = keyed_rows(&diff, "dimensions", "cache");
    assert!(
        judged
            .iter()
            .any(|r| r["system"] == "redis" && r["command"] == "mget" && r["key"] == "a?"),
        "{judged:#?}"
    );
    assert_eq!(diff["regressions"], serde_json::json!([]));

    let manifest = manifest(&run);
    let protocols = &manifest["tracers"][0];
    assert_eq!(protocols["drops"]["events_dropped"], 0, "{protocols}");
}
