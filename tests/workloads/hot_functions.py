"""Known hot Python functions: the main thread burns CPU in leaf <- middle <- outer, a second
thread in spinner (both Python loops, sharing the GIL), a third sleeps in waiter.

usage: hot_functions.py SECONDS [GO_FILE]  -- with GO_FILE, waits for it to exist first
Prints pid=, main_tid=, spinner_tid=, waiter_tid=, waiter_slept_ns= and the lines: leaf_loop=,
leaf_add=, middle_call=, outer_call=, waiter_sleep=.
"""
import inspect
import os
import sys
import threading
import time


def leaf(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def middle(n):
    return leaf(n)


def outer(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        middle(20000)


def spinner(seconds, ready):
    ready.append(threading.get_native_id())
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        count += 1


def waiter(seconds, ready, slept):
    ready.append(threading.get_native_id())
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic_ns()
        time.sleep(0.25)
        slept.append(time.monotonic_ns() - start)


def line_of(function, text):
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


seconds = float(sys.argv[1])
if len(sys.argv) > 2:
    print(f"pid={os.getpid()}", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.01)
ready, waiting, slept = [], [], []
thread = threading.Thread(target=spinner, args=(seconds, ready))
sleeper = threading.Thread(target=waiter, args=(seconds, waiting, slept))
thread.start()
sleeper.start()
outer(seconds)
thread.join()
sleeper.join()
print(f"pid={os.getpid()}")
print(f"main_tid={threading.get_native_id()}")
print(f"spinner_tid={ready[0]}")
print(f"waiter_tid={waiting[0]}")
print(f"waiter_slept_ns={sum(slept)}")
print(f"waiter_sleep={line_of(waiter, 'time.sleep')}")
print(f"leaf_loop={line_of(leaf, 'for i')}")
print(f"leaf_add={line_of(leaf, 'total +=')}")
print(f"middle_call={line_of(middle, 'return leaf')}")
print(f"outer_call={line_of(outer, 'middle(20000)')}")
