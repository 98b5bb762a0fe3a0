"""A CPU-bound Python loop: no system calls, only bytecode.

usage: python_cpu.py CALLS RESULT_FILE — writes the mean ns per call of work() to RESULT_FILE.
"""
import sys
import time


def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


calls, result = int(sys.argv[1]), sys.argv[2]
start = time.monotonic_ns()
for _ in range(calls):
    work(1000)
elapsed = time.monotonic_ns() - start
with open(result, "w") as out:
    out.write(f"{elapsed / calls:.2f}\n")
