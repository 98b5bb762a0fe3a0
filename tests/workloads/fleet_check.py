"""Reads a fleet as analysts would, one dataset per table, and checks that each run's rows are
all there, under its own host, service and run.

usage: fleet_check.py FLEET [RUN...]
  FLEET: a directory (read with pyarrow.dataset and DuckDB) or s3://BUCKET/PREFIX (pyarrow on
  the S3 endpoint of AWS_ENDPOINT_URL). Each RUN is a run directory; its rows per table are
  what the fleet must hold for its partition. Without RUNs, the rows each manifest in the fleet
  lists are.
Prints `TABLE host=H run=R rows=N` per table and run, `getppid host=H run=R calls=N` per run,
then `fleet ok`; exits 1 on any difference.
"""
import json
import os
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

fleet, run_dirs = sys.argv[1], [Path(r) for r in sys.argv[2:]]
failures = []

if fleet.startswith("s3://"):
    filesystem = pafs.S3FileSystem(
        endpoint_override=os.environ["AWS_ENDPOINT_URL"],
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ["AWS_REGION"],
    )
    root = fleet.removeprefix("s3://")
    duckdb = None  # DuckDB reads S3 through its httpfs extension, downloaded at first use.
else:
    filesystem = pafs.LocalFileSystem()
    root = fleet
    import duckdb


def local_rows(run):
    """Rows per table of a run directory (its finished tables, or its segments)."""
    rows = {}
    for path in run.iterdir():
        if path.name.endswith((".parquet", ".parts")):
            table = path.name.removesuffix(".parquet").removesuffix(".parts")
            merged = run / f"{table}.parquet"
            rows[table] = ds.dataset(str(merged if merged.exists() else run / f"{table}.parts"),
                                     format="parquet").count_rows()
    return rows


def fleet_manifests():
    selector = pafs.FileSelector(f"{root}/runs", recursive=True)
    for info in filesystem.get_file_info(selector):
        if info.path.endswith("/manifest.json"):
            with filesystem.open_input_stream(info.path) as f:
                yield json.loads(f.read())


if run_dirs:
    expected = []
    for run in run_dirs:
        manifest = json.loads((run / "manifest.json").read_text())
        expected.append((manifest["partition"], local_rows(run)))
else:
    # A manifest may list a table its run never wrote (python_calls without --python-calls):
    # only an empty one.
    expected = [(m["partition"], {t: r["rows"] for t, r in m["tables"].items()
                                  if r["rows"] > 0 or filesystem.get_file_info(f"{root}/{t}").type
                                  != pafs.FileType.NotFound})
                for m in fleet_manifests()]
    if not expected:
        failures.append("no manifest in the fleet")

datasets = {}
for partition, rows in expected:
    where = ((ds.field("host") == partition["host"])
             & (ds.field("service") == partition["service"])
             & (ds.field("run") == partition["run"]))
    for table, want in sorted(rows.items()):
        if table not in datasets:
            datasets[table] = ds.dataset(f"{root}/{table}", format="parquet",
                                         partitioning="hive", filesystem=filesystem)
        dataset = datasets[table]
        for column in ("host", "service", "run"):
            if str(dataset.schema.field(column).type) != "string":
                failures.append(f"{table}.{column} is {dataset.schema.field(column).type}")
        got = dataset.count_rows(filter=where)
        print(f"{table} host={partition['host']} run={partition['run']} rows={got}")
        if got != want:
            failures.append(f"{table} of {partition}: {got} rows in the fleet, {want} in the run")
        if duckdb is not None:
            [(in_duckdb,)] = duckdb.sql(
                f"SELECT count(*) FROM read_parquet('{root}/{table}/*/*/*/*.parquet', "
                "hive_partitioning = true) WHERE host = $host AND service = $service AND run = $run",
                params=partition,
            ).fetchall()
            if in_duckdb != want:
                failures.append(f"DuckDB: {table} of {partition}: {in_duckdb} rows, {want} in the run")
    if "syscalls" in rows:
        calls = datasets["syscalls"].to_table(
            columns=["calls"], filter=where & (ds.field("syscall") == "getppid"))["calls"]
        print(f"getppid host={partition['host']} run={partition['run']} "
              f"calls={pc.sum(calls).as_py() or 0}")

for table, dataset in datasets.items():
    want = sum(rows.get(table, 0) for _, rows in expected)
    if dataset.count_rows() != want:
        failures.append(f"{table}: {dataset.count_rows()} rows in the fleet, {want} in the runs")

if duckdb is not None:
    manifests = duckdb.sql(
        f"SELECT host, service, run FROM read_json_auto('{root}/runs/*/*/*/manifest.json', "
        "hive_partitioning = true)").fetchall()
    published = {(p["host"], p["service"], p["run"]) for p, _ in expected}
    if set(manifests) != published:
        failures.append(f"manifests in the fleet: {manifests}, runs: {published}")

print("\n".join(failures) if failures else "fleet ok")
sys.exit(1 if failures else 0)
