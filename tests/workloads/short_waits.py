"""A worker thread waits WAITS times for 100 µs (time.sleep: each a short block in
clock_nanosleep), timing what it slept; the main thread waits for it without a timeout.

usage: short_waits.py WAITS
Prints pid=, worker_tid=, slept_ns= (the worker's wall time inside the sleeps) and
sleep_line= (the line of the sleep).
"""
import inspect
import os
import sys
import threading
import time

waits = int(sys.argv[1])
result = {}


def worker():
    slept = 0
    for _ in range(waits):
        start = time.monotonic_ns()
        time.sleep(0.0001)  # sleep_line
        slept += time.monotonic_ns() - start
    result["tid"] = threading.get_native_id()
    result["slept"] = slept


source, first = inspect.getsourcelines(worker)
line = first + next(i for i, text in enumerate(source) if text.rstrip().endswith("# sleep_line"))
thread = threading.Thread(target=worker)
thread.start()
thread.join()
print(f"pid={os.getpid()}", flush=True)
print(f"worker_tid={result['tid']}", flush=True)
print(f"slept_ns={result['slept']}", flush=True)
print(f"sleep_line={line}", flush=True)
