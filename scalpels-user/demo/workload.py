"""The demo target of `cargo xtask demo`: a small service-like Python program.

A worker thread serves "requests" (reads a config file, stats paths, writes a log line),
one request in ten is slow (sleeps 20 ms, above the default --slow-syscall of 10 ms), and
a lookup of a missing file fails, as real services do.
"""
import os
import tempfile
import threading
import time

STOP = time.monotonic() + float(os.environ.get("SCALPELS_DEMO_SECONDS", "4"))


def serve(log_path):
    request = 0
    with open(log_path, "a") as log:
        while time.monotonic() < STOP:
            request += 1
            with open("/etc/hostname") as config:
                config.read()
            os.stat("/etc")
            try:
                os.stat("/etc/scalpels-demo-missing.conf")
            except FileNotFoundError:
                pass
            log.write(f"request {request}\n")
            log.flush()
            if request % 10 == 0:
                time.sleep(0.02)
            else:
                time.sleep(0.001)


with tempfile.TemporaryDirectory() as tmp:
    worker = threading.Thread(target=serve, args=(os.path.join(tmp, "demo.log"),), name="worker")
    worker.start()
    worker.join()
