"""Calls counted() exactly 12345 times, from a loop in another function, for exact call
counting (--python-calls). Waits first, so the tracer has found the interpreter and armed its
probes; waits after, so the tracer names the functions while the process lives."""
import os
import time

CALLS = 12345


def counted():
    return 1


def caller():
    for _ in range(CALLS):
        counted()


print(f"pid={os.getpid()}", flush=True)
time.sleep(1.0)
caller()
time.sleep(0.5)
