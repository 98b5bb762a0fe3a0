"""Answers "which SQL took the most time across the fleet" with DuckDB and with Spark (pyspark,
local mode), each reading the fleet's `sql` table as Parquet with its host/service/run
partitions.

usage: fleet_top_sql.py FLEET

Prints one JSON line per engine and question, the rows as lists:
  {"engine": "duckdb"|"spark", "question": "top", "seconds": S,
   "rows": [[fingerprint, statement, calls, total_ns, hosts], ...]}    by total_ns, descending
  {"engine": ..., "question": "per_host", "seconds": S,
   "rows": [[host, fingerprint, calls, total_ns], ...]}                by host, fingerprint
Durations are summed as integer nanoseconds (`latency` is Parquet INT64 nanoseconds). Spark
does not read `time`, a TIMESTAMP(NANOS): spark.sql.legacy.parquet.nanosAsLong makes it a
long (of nanoseconds) instead of failing on the whole file. `fingerprint` is an unsigned
64-bit integer, a DECIMAL(20,0) to Spark: both engines' values are printed as integers.
"""
import json
import os
import sys
import time
from decimal import Decimal

fleet = sys.argv[1]

TOP = """
SELECT fingerprint, min(statement) AS statement, count(*) AS calls,
       sum(latency) AS total_ns, count(DISTINCT host) AS hosts
FROM sql GROUP BY fingerprint ORDER BY total_ns DESC, fingerprint
"""
PER_HOST = """
SELECT host, fingerprint, count(*) AS calls, sum(latency) AS total_ns
FROM sql GROUP BY host, fingerprint ORDER BY host, fingerprint
"""
QUESTIONS = {"top": TOP, "per_host": PER_HOST}


def emit(engine, question, seconds, rows):
    rows = [[int(v) if isinstance(v, Decimal) else v for v in row] for row in rows]
    print(json.dumps({"engine": engine, "question": question, "seconds": round(seconds, 3),
                      "rows": rows}), flush=True)


def with_duckdb():
    import duckdb

    start = time.monotonic()
    db = duckdb.connect()
    db.execute(f"CREATE VIEW sql AS SELECT * FROM read_parquet('{fleet}/sql/*/*/*/*.parquet', "
               "hive_partitioning = true)")
    for question, query in QUESTIONS.items():
        emit("duckdb", question, time.monotonic() - start, db.sql(query).fetchall())


def with_spark():
    from pyspark.sql import SparkSession

    start = time.monotonic()
    # The driver on the loopback address: no look-up of the host's name, no outside interface.
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    spark = (SparkSession.builder.master("local[2]").appName("fleet_top_sql")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.legacy.parquet.nanosAsLong", "true")
             # host, service and run as written, never guessed to be numbers or dates.
             .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        spark.read.parquet(f"{fleet}/sql").createOrReplaceTempView("sql")
        for question, query in QUESTIONS.items():
            emit("spark", question, time.monotonic() - start, spark.sql(query).collect())
    finally:
        spark.stop()


with_duckdb()
with_spark()
