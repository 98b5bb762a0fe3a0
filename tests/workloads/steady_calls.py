"""Makes exactly N getppid calls in one worker thread, spread evenly over S seconds (so that a
rotated trace cuts through them), and prints its pid and tid."""
import os
import sys
import threading
import time

n, seconds = int(sys.argv[1]), float(sys.argv[2])
TICKS = 100


def work():
    start = time.monotonic()
    for tick in range(TICKS):
        for _ in range(n // TICKS + (1 if tick < n % TICKS else 0)):
            os.getppid()
        time.sleep(max(0.0, start + (tick + 1) * seconds / TICKS - time.monotonic()))
    print(f"worker_tid={threading.get_native_id()}", flush=True)


worker = threading.Thread(target=work)
worker.start()
worker.join()
print(f"pid={os.getpid()}", flush=True)
