"""Waits for GO_FILE to exist, then does one thing, so the tracer is attached first.

usage: wait_then.py GO_FILE getppid N      -- N getppid calls in this process
       wait_then.py GO_FILE fork N         -- a forked child makes N getppid calls
       wait_then.py GO_FILE serve N        -- N getppid calls, then stays up until killed
       wait_then.py GO_FILE spread N       -- N getppid calls spread evenly over 3 s (so that a
                                              rotated trace cuts through them)
"""
import os
import sys
import time

go_file, action, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
print(f"pid={os.getpid()}", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go_file):
    if time.monotonic() > deadline:
        sys.exit("go file never appeared")
    time.sleep(0.02)

if action == "fork":
    child = os.fork()
    if child == 0:
        for _ in range(n):
            os.getppid()
        os._exit(0)
    print(f"child={child}", flush=True)
    os.waitpid(child, 0)
elif action == "spread":
    ticks, seconds = 100, 3.0
    start = time.monotonic()
    for tick in range(ticks):
        for _ in range(n // ticks + (1 if tick < n % ticks else 0)):
            os.getppid()
        time.sleep(max(0.0, start + (tick + 1) * seconds / ticks - time.monotonic()))
    print("done", flush=True)
else:
    for _ in range(n):
        os.getppid()
    print("done", flush=True)
    if action == "serve":
        time.sleep(3600)
