"""Deep Python stacks: the main thread burns CPU in `leaf`, called through DEPTH nested calls
of `level` from `root`, called from the module.

usage: deep_stacks.py DEPTH SECONDS
Prints pid= and depth= (the Python frames of the stack in `leaf`, as inspect counts them).
"""
import inspect
import os
import sys
import time


def leaf(end):
    depth = len(inspect.stack(0))
    print(f"pid={os.getpid()}", f"depth={depth}", sep="\n", flush=True)
    total = 0
    while time.monotonic() < end:
        for i in range(2000):
            total += i * i
    return total


def level(n, end):
    if n == 0:
        return leaf(end)
    return level(n - 1, end)


def root(depth, seconds):
    return level(depth, time.monotonic() + seconds)


sys.setrecursionlimit(10000)
root(int(sys.argv[1]), float(sys.argv[2]))
