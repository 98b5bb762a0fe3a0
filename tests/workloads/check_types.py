"""Reads a run with pandas and checks the column types analysts rely on. usage: check_types.py RUN"""
import json
import sys

import pandas as pd

run = sys.argv[1]
expected = {
    "syscalls": {
        "interval_start": "datetime64[ns, UTC]",
        "interval_end": "datetime64[ns, UTC]",
        "pid": "uint32",
        "tid": "uint32",
        "comm": "category",
        "syscall": "category",
        "calls": "uint64",
        "errors": "uint64",
        "total_latency": "timedelta64[ns]",
        "max_latency": "timedelta64[ns]",
    },
    "syscall_events": {
        "start_time": "datetime64[ns, UTC]",
        "duration": "timedelta64[ns]",
        "syscall": "category",
        "ret": "int64",
        "arg0": "uint64",
    },
}
failures = []
for table, columns in expected.items():
    frame = pd.read_parquet(f"{run}/{table}.parquet")
    if len(frame) == 0:
        failures.append(f"{table} is empty")
    for column, dtype in columns.items():
        if str(frame[column].dtype) != dtype:
            failures.append(f"{table}.{column}: {frame[column].dtype} != {dtype}")
if json.load(open(f"{run}/manifest.json"))["schema_version"] != 1:
    failures.append("manifest schema_version is not 1")
print("\n".join(failures) if failures else "types ok")
sys.exit(1 if failures else 0)
