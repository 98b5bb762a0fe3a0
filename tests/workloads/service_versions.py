"""Two versions of a small service, for report and diff tests: it handles REQUESTS requests at
a fixed RATE per second (sleeping in between, as a service waits for clients), each one burning
CPU in `checksum`, making GETPPID getppid calls and one SQLite query. Version 2 also renders
each response with `slow_render` (more CPU) and audits it with an extra SQLite query.

usage: service_versions.py VERSION REQUESTS RATE GETPPID
Prints pid=, requests=, getppid= (the calls it made).
"""
import os
import sqlite3
import sys
import time

version, requests, rate, getppid_calls = (int(a) for a in sys.argv[1:5])


def checksum(n):
    total = 0
    for i in range(n):
        total = (total * 31 + i) & 0xFFFFFFFF
    return total


def slow_render(n):
    text = 0
    for i in range(n):
        text ^= (i * 7919) % 65521
    return text


def handle(db, i):
    checksum(30000)
    for _ in range(getppid_calls):
        os.getppid()
    # Literal ids, so each statement is new to SQLite's cache (the tracer sees every one).
    db.execute(f"SELECT name FROM items WHERE id = {i % 100}").fetchall()
    if version >= 2:
        slow_render(60000)
        db.execute(f"SELECT count(*) FROM audit WHERE item = {i % 100}").fetchall()


def serve(db):
    start = time.monotonic()
    for i in range(requests):
        # Requests arrive on a fixed schedule; a late one is handled at once.
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        handle(db, i)


db = sqlite3.connect(":memory:", cached_statements=0)
db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
db.execute("CREATE TABLE audit (item INTEGER)")
db.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item-{i}") for i in range(100)])
serve(db)
print(f"pid={os.getpid()}")
print(f"requests={requests}")
print(f"getppid={requests * getppid_calls}")
