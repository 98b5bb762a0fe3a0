"""A service that forks a worker while traced, like oslo.service's workers: both call a
function, then idle until killed.

usage: forking_service.py GO_FILE  -- prints pid=, then child= once the worker is forked.
"""
import os
import time


def handle():
    return 1


print(f"pid={os.getpid()}", flush=True)
while not os.path.exists(__import__("sys").argv[1]):
    time.sleep(0.01)
# Serving for a moment (the tracer arms this process's probes), then a worker is forked.
time.sleep(0.5)
child = os.fork()
if child == 0:
    for _ in range(100):
        handle()
    time.sleep(60)
    os._exit(0)
print(f"child={child}", flush=True)
for _ in range(100):
    handle()
time.sleep(60)
