"""Talks to a real memcached (pymemcache) and a real Redis (redis-py) with a known mix of
commands, so a test can count each one in the `cache` table: hits, misses, multi-key reads,
replies the client does not wait for (memcached `noreply`), a pipeline, an error.

Usage: cache_client.py MEMCACHED_PORT REDIS_PORT. Prints pid= when done.
"""

import os
import sys

import redis
from pymemcache.client.base import Client

memcached_port, redis_port = int(sys.argv[1]), int(sys.argv[2])

mc = Client(("127.0.0.1", memcached_port), connect_timeout=5, timeout=5)
for i in range(5):
    mc.set(f"k{i}", f"value-{i}", noreply=False)
mc.set("counter", "10", noreply=False)
for i in range(2):
    mc.set(f"quiet{i}", "q", noreply=True)
for i in range(5):
    assert mc.get(f"k{i}") == f"value-{i}".encode()
for i in range(3):
    assert mc.get(f"missing{i}") is None
assert sorted(mc.get_many(["k0", "k1", "missing9"])) == ["k0", "k1"]
assert mc.delete("k0", noreply=False)
assert mc.incr("counter", 5, noreply=False) == 15
mc.close()

r = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=5)
for i in range(5):
    r.set(f"a{i}", f"value-{i}")
for i in range(5):
    assert r.get(f"a{i}") == f"value-{i}".encode()
for i in range(3):
    assert r.get(f"b{i}") is None
assert r.mget("a0", "a1", "b9") == [b"value-0", b"value-1", None]
pipe = r.pipeline(transaction=False)
for _ in range(10):
    pipe.incr("cnt")
assert pipe.execute() == list(range(1, 11))
assert r.delete("a0") == 1
r.set("word", "x")
try:
    r.incr("word")
    raise SystemExit("INCR of a word succeeded")
except redis.ResponseError:
    pass
r.close()

print(f"pid={os.getpid()}", flush=True)
