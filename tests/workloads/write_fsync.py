"""Writes exactly N bytes to PATH (buffered, 1 MiB write calls), then fsyncs.

usage: write_fsync.py PATH N — prints pid=, written= and writes= (its write calls).
"""
import os
import sys

path, total = sys.argv[1], int(sys.argv[2])
chunk = b"w" * (1 << 20)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
written = writes = 0
while written < total:
    written += os.write(fd, chunk[: total - written])
    writes += 1
os.fsync(fd)
os.close(fd)
print(f"pid={os.getpid()}\nwritten={written}\nwrites={writes}", flush=True)
