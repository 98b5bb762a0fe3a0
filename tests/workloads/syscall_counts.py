"""Makes exactly N getppid and M failing openat calls in one worker thread, prints its tid."""
import os
import sys
import threading

n, m = int(sys.argv[1]), int(sys.argv[2])


def work():
    for _ in range(n):
        os.getppid()
    for _ in range(m):
        try:
            os.open("/nonexistent/scalpels-test", os.O_RDONLY)
        except FileNotFoundError:
            pass
    print(f"worker_tid={threading.get_native_id()}", flush=True)


worker = threading.Thread(target=work)
worker.start()
worker.join()
print(f"pid={os.getpid()}", flush=True)
