"""Two versions of a small service, for report and diff tests: it handles REQUESTS requests at
a fixed RATE per second (sleeping in between, as a service waits for clients), each one burning
CPU in `checksum`, making GETPPID getppid calls and one PostgreSQL query. Version 2 also renders
each response with `slow_render` (more CPU) and audits it with an extra query.

usage: service_versions.py VERSION REQUESTS RATE GETPPID
The server comes from libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
Prints pid=, requests=, getppid= (the calls it made), queries= (per request).
"""
import os
import sys
import time

import psycopg2

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
    db.execute("SELECT name FROM items WHERE id = %s", (i % 100,))
    db.fetchall()
    if version >= 2:
        slow_render(60000)
        db.execute("SELECT count(*) FROM audit WHERE item = %s", (i % 100,))
        db.fetchall()


def serve(db):
    start = time.monotonic()
    for i in range(requests):
        # Requests arrive on a fixed schedule; a late one is handled at once.
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        handle(db, i)


connection = psycopg2.connect("")
# No BEGIN/COMMIT around the statements: each request's queries are exactly the ones above.
connection.autocommit = True
db = connection.cursor()
# Temporary tables: runs never see each other's.
db.execute("CREATE TEMPORARY TABLE items (id INT PRIMARY KEY, name TEXT)")
db.execute("CREATE TEMPORARY TABLE audit (item INT)")
db.execute("INSERT INTO items SELECT i, 'item-' || i FROM generate_series(0, 99) AS i")
serve(db)
print(f"pid={os.getpid()}")
print(f"requests={requests}")
print(f"getppid={requests * getppid_calls}")
print(f"queries={1 if version < 2 else 2}")
