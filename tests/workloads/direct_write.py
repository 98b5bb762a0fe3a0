"""Writes exactly N bytes to PATH with O_DIRECT in 64 KiB chunks, then fsyncs.

usage: direct_write.py PATH N — prints pid= and written= lines.
"""
import mmap
import os
import sys

path, total = sys.argv[1], int(sys.argv[2])
chunk = 64 * 1024
assert total % chunk == 0, "N must be a multiple of 64 KiB"
buffer = mmap.mmap(-1, chunk)  # page-aligned, as O_DIRECT needs
buffer.write(b"s" * chunk)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
written = 0
while written < total:
    written += os.write(fd, buffer)
os.fsync(fd)
os.close(fd)
print(f"pid={os.getpid()}")
print(f"written={written}")
