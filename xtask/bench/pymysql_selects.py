"""N PyMySQL point SELECTs on one connection, as fast as they go; writes mean ns per query.

usage: pymysql_selects.py PORT USER PASSWORD DATABASE N RESULT_FILE
"""
import sys
import time

import pymysql

port, user, password, database, n, result = sys.argv[1:7]
n = int(n)
conn = pymysql.connect(host="127.0.0.1", port=int(port), user=user, password=password,
                       database=database, autocommit=True, ssl_disabled=True)
with conn.cursor() as cur:
    cur.execute("CREATE TABLE IF NOT EXISTS bench_items (id INT PRIMARY KEY, name VARCHAR(40))")
    cur.execute("REPLACE INTO bench_items VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    start = time.perf_counter_ns()
    for i in range(n):
        cur.execute("SELECT name FROM bench_items WHERE id = %s", (i % 3 + 1,))
        cur.fetchall()
    elapsed = time.perf_counter_ns() - start
conn.close()
with open(result, "w") as f:
    f.write(f"{elapsed / n}\n")
