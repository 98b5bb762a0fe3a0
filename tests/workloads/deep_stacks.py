"""Deep Python stacks: the main thread burns CPU in `leaf`, called through DEPTH nested calls
of `level` from `root`, called from the module. With GENERATOR_EVERY, every that many levels
the next one is called from the body of a generator, `through_generator`, whose frame CPython
(3.11+) keeps in the generator object rather than in the thread's data stack.

usage: deep_stacks.py DEPTH SECONDS [GENERATOR_EVERY]
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


GENERATOR_EVERY = int(sys.argv[3]) if len(sys.argv) > 3 else 0


def through_generator(n, end):
    yield level(n, end)


def level(n, end):
    if n == 0:
        return leaf(end)
    if GENERATOR_EVERY and n % GENERATOR_EVERY == 0:
        return next(through_generator(n - 1, end))
    return level(n - 1, end)


def root(depth, seconds):
    return level(depth, time.monotonic() + seconds)


sys.setrecursionlimit(10000)
root(int(sys.argv[1]), float(sys.argv[2]))
