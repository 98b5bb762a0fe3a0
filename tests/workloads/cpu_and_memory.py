"""Holds 200 MiB and burns CPU on one thread until it has used SECONDS of CPU time.

usage: cpu_and_memory.py SECONDS — prints pid=, held_bytes= and, at the end, cpu_ns= (its own
user + system CPU time, from os.times()).
"""
import os
import sys

cpu_seconds = float(sys.argv[1])
held_bytes = 200 << 20
held = bytearray(held_bytes)
for page in range(0, held_bytes, 4096):
    held[page] = 1  # touch every page, so all of it is resident
print(f"pid={os.getpid()}", flush=True)
print(f"held_bytes={held_bytes}", flush=True)


def cpu_used():
    times = os.times()
    return times.user + times.system


spins = 0
while cpu_used() < cpu_seconds:
    for _ in range(10_000):
        spins += 1
used = cpu_used()
print(f"cpu_ns={round(used * 1e9)}", flush=True)
