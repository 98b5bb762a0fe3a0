"""The main thread leaves with pthread_exit; a worker thread, still running, then makes exactly
N getppid calls and prints its tid. The process lives on until the worker ends."""
import ctypes
import os
import sys
import threading
import time

n = int(sys.argv[1])
leader_gone = threading.Event()


def work():
    # Wait until the leader has exited: its /proc status says zombie.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{os.getpid()}/status") as status:
            if any(line.startswith("State:\tZ") for line in status):
                break
        time.sleep(0.01)
    else:
        print("leader_alive=1", flush=True)
    for _ in range(n):
        os.getppid()
    print(f"worker_tid={threading.get_native_id()}", flush=True)
    os._exit(0)


print(f"pid={os.getpid()}", flush=True)
threading.Thread(target=work).start()
# ctypes releases the GIL around the call: the worker runs on while the leader is gone.
ctypes.CDLL(None).pthread_exit(None)
