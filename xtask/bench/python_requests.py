"""A service-like Python loop: each "request" stats, opens, reads and closes a file.

usage: python_requests.py REQUESTS RESULT_FILE — writes the mean ns per request to RESULT_FILE.
"""
import os
import sys
import time

requests, result = int(sys.argv[1]), sys.argv[2]
start = time.monotonic_ns()
for _ in range(requests):
    os.stat("/etc/hostname")
    with open("/etc/hostname", "rb") as f:
        f.read()
elapsed = time.monotonic_ns() - start
with open(result, "w") as out:
    out.write(f"{elapsed / requests:.2f}\n")
