"""Known statements through Python's stdlib sqlite3 module, for the sqlite probes of the
protocols tracer: each row of sql.parquet they should give is in tests/tests/sqlite.rs.

usage: sqlite_queries.py GO_FILE DB_PATH
Imports sqlite3 (so libsqlite3 is mapped), prints pid=N, waits for GO_FILE (the tracer
attached), runs the statements and prints done.
"""
import os
import sqlite3
import sys
import time

go_file, db_path = sys.argv[1], sys.argv[2]
print(f"pid={os.getpid()}", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go_file):
    if time.monotonic() > deadline:
        sys.exit("go file never appeared")
    time.sleep(0.02)

# Autocommit: no BEGIN/COMMIT statements of the module's own between ours.
conn = sqlite3.connect(db_path, isolation_level=None)
cur = conn.cursor()
cur.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL)")
cur.executemany(
    "INSERT INTO items VALUES (?, ?, ?)",
    [(1, "apple", 1.5), (2, "pear", 2.25), (3, "plum", 0.75)],
)
cur.execute("SELECT id, name FROM items WHERE price > ? ORDER BY id", (1.0,))
assert len(cur.fetchall()) == 2
cur.execute("UPDATE items SET price = price * 2 WHERE id IN (1, 2)")
try:
    cur.execute("INSERT INTO items VALUES (1, 'dup', 9.0)")
    sys.exit("the duplicate insert did not fail")
except sqlite3.IntegrityError:
    pass
try:
    cur.execute("SELECT * FROM missing_table")
    sys.exit("the missing table was found")
except sqlite3.OperationalError:
    pass
cur.execute("SELECT count(*) FROM items")
assert cur.fetchone() == (3,)
cur.execute("DELETE FROM items WHERE id = 3")
conn.close()
print("done", flush=True)
