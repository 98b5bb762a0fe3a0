"""Reads a memcached whose hot keys are all there, or only some: the same commands, another hit
ratio, for `diff` to judge.

Usage: cache_hits.py MEMCACHED_PORT STORED — stores hot0..hot{STORED-1}, then gets
hot0..hot19 ten times over (200 gets: with STORED = 20 every one hits, with 10 half miss).
Prints hits= and pid= when done.
"""

import os
import sys

from pymemcache.client.base import Client

port, stored = int(sys.argv[1]), int(sys.argv[2])
mc = Client(("127.0.0.1", port), connect_timeout=5, timeout=5)
for i in range(20):
    mc.delete(f"hot{i}", noreply=False)
for i in range(stored):
    mc.set(f"hot{i}", "v", noreply=False)
hits = sum(mc.get(f"hot{i % 20}") is not None for i in range(200))
mc.close()
print(f"hits={hits}", flush=True)
print(f"pid={os.getpid()}", flush=True)
