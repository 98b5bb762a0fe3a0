"""Sleeps once for the given milliseconds (one clock_nanosleep call)."""
import os
import sys
import time

print(f"pid={os.getpid()}", flush=True)
time.sleep(int(sys.argv[1]) / 1000)
