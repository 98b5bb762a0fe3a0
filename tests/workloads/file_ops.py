"""File-system work for the files tracer.

usage: file_ops.py preopened GO_FILE PATH -- opens PATH, waits for GO_FILE, then reads it all
       file_ops.py slow_sync PATH MIB     -- writes MIB MiB through the page cache, fsyncs, then
                                             reads it back from the disk (O_DIRECT) in one call
Prints pid= first and read= (bytes) after a read.
"""
import mmap
import os
import sys
import time

mode = sys.argv[1]
print(f"pid={os.getpid()}", flush=True)
if mode == "preopened":
    go_file, path = sys.argv[2], sys.argv[3]
    fd = os.open(path, os.O_RDONLY)
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            sys.exit("go file never appeared")
        time.sleep(0.02)
    total = 0
    while chunk := os.read(fd, 4096):
        total += len(chunk)
    os.close(fd)
    print(f"read={total}", flush=True)
elif mode == "slow_sync":
    path, mib = sys.argv[2], int(sys.argv[3])
    # Like a service that has been running a while: the tracer has found the interpreter
    # (it looks for it every few tens of milliseconds after an exec).
    time.sleep(0.3)
    block = b"d" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    # One read of the whole file from the disk, not the page cache: a slow read.
    buffer = mmap.mmap(-1, mib << 20)  # page-aligned, as O_DIRECT needs
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    print(f"read={os.readv(fd, [buffer])}", flush=True)
    os.close(fd)
    os.unlink(path)
else:
    sys.exit(f"unknown mode {mode}")
