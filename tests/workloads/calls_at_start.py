"""A service whose first moments count: N getppid calls as its very first statements, then its
pid printed, then up for SECONDS.

usage: calls_at_start.py N SECONDS
"""
import os
import sys
import time

for _ in range(int(sys.argv[1])):
    os.getppid()
print(f"pid={os.getpid()}", flush=True)
time.sleep(float(sys.argv[2]))
