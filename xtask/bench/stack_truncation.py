"""How many of a run's Python stacks were cut at --python-depth, and how deep the stacks of
its SQL and RPC rows are, for `cargo xtask bench`.

usage: stack_truncation.py RUN_DIR
    prints one JSON object:
    {"on_cpu": [TRUNCATED, TOTAL], "off_cpu": [...], "rows": [...], "row_depth": [MIN, MAX]}
    on_cpu, off_cpu: the python_samples of that kind; rows: the rows of sql, rpc and http that
    carry a python_stack_id (a row's stack is truncated when the sample it was taken with is);
    row_depth: the fewest and most frames of those rows' stacks (null without such rows).
    Tables the run does not have count as empty.
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def table(run, name, columns):
    path = os.path.join(run, f"{name}.parquet")
    return pq.read_table(path, columns=columns) if os.path.exists(path) else None


def main(run):
    result = {"on_cpu": [0, 0], "off_cpu": [0, 0], "rows": [0, 0], "row_depth": None}
    samples = table(run, "python_samples", ["stack_id", "kind", "truncated"])
    if samples is None:
        print(json.dumps(result))
        return
    kinds = samples["kind"].cast("string")
    for kind in ("on_cpu", "off_cpu"):
        of_kind = samples.filter(pc.equal(kinds, kind))
        result[kind] = [pc.sum(of_kind["truncated"].cast("int64")).as_py() or 0,
                        of_kind.num_rows]
    truncated_ids = pc.unique(samples.filter(samples["truncated"])["stack_id"])
    row_ids = []
    for name in ("sql", "rpc", "http"):
        rows = table(run, name, ["python_stack_id"])
        if rows is None:
            continue
        ids = rows["python_stack_id"].drop_null()
        result["rows"][0] += pc.sum(pc.is_in(ids, value_set=truncated_ids).cast("int64")) \
            .as_py() or 0
        result["rows"][1] += len(ids)
        row_ids.append(pc.unique(ids))
    stacks = table(run, "python_stacks", ["stack_id", "level"])
    if row_ids and stacks is not None:
        depths = stacks.group_by("stack_id").aggregate([("level", "max")])
        ids = pc.unique(pa.chunked_array(row_ids).combine_chunks())
        of_rows = depths.filter(pc.is_in(depths["stack_id"], value_set=ids))["level_max"]
        if len(of_rows):
            result["row_depth"] = [pc.min(of_rows).as_py() + 1, pc.max(of_rows).as_py() + 1]
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
