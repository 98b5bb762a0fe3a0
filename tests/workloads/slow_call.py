"""Slow system calls made by known Python code: handle_request -> fetch_config sleeps 50 ms,
five times.

Prints pid=, tid=, sleep_line=, call_line=.
"""
import inspect
import os
import threading
import time


def fetch_config():
    time.sleep(0.05)


def handle_request():
    fetch_config()


for _ in range(5):
    handle_request()
print(f"pid={os.getpid()}")
print(f"tid={threading.get_native_id()}")
print(f"sleep_line={inspect.getsourcelines(fetch_config)[1] + 1}")
print(f"call_line={inspect.getsourcelines(handle_request)[1] + 1}")
