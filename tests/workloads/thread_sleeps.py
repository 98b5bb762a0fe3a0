"""A worker thread that sleeps SLEEPS times (each a voluntary context switch of that thread
alone), while the main thread waits for it; then both wait a second more, so that a look at
the process after the sleeps sees the worker alive.

usage: thread_sleeps.py SLEEPS
Prints pid= and worker_switches= (the worker's own voluntary switches, from
/proc/self/task/TID/status, once it is done).
"""
import os
import sys
import threading
import time

sleeps = int(sys.argv[1])
done = threading.Event()
counted = []


def worker():
    for _ in range(sleeps):
        time.sleep(0.002)
    with open(f"/proc/self/task/{threading.get_native_id()}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches:"):
                counted.append(int(line.split()[1]))
    done.set()
    time.sleep(1.5)


print(f"pid={os.getpid()}", flush=True)
thread = threading.Thread(target=worker)
thread.start()
done.wait()
print(f"worker_switches={counted[0]}", flush=True)
thread.join()
