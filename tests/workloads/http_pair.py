"""HTTP/1.1 on loopback: a server process and a client process, known requests and answers,
with everything each side did printed.

usage: http_pair.py [--go GO_FILE]

Like rpc_oslo.py, two processes (this program is the client and starts the server as a
child, so tracing this program's command line follows both; each side has its own pid).
The client makes, on connection 1 (http.client, keep-alive): GET /hello -> 200,
GET /missing -> 404, POST /echo with a body -> 200 echoing it, GET /hello?n=2 -> 200; then
on connection 2 (a raw socket) two pipelined requests sent in ONE write: GET /hello -> 200
and GET /missing -> 404 with `Connection: close`. The server exits after those 6 requests.
With --go, waits for GO_FILE before starting either side.

Prints JSON lines (the server's relayed by the client):
  {"event": "ready", "side": "server", "pid": ..., "port": PORT}
  {"event": "request", "side": "client", "pid": ..., "connection": 1|2,
   "local_port": PORT (the server's client_port), "method": ...,
   "path": ..., "status": ..., "request_body_bytes": ..., "response_body_bytes": ...}
  {"event": "served", "side": "server", "pid": ..., "client_port": ..., "method": ...,
   "path": ..., "status": ..., "request_body_bytes": ..., "response_body_bytes": ...}
  {"event": "done", "requests": 6}
"""
import argparse
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

REQUESTS = 6
RUN_LIMIT = 30
HELLO = b"hello from scalpels\n"
NOT_FOUND = b"no such page\n"
STDOUT = threading.Lock()


def emit(**fields):
    write_line(json.dumps(fields) + "\n")


def write_line(line):
    with STDOUT:
        sys.stdout.write(line)
        sys.stdout.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, Content-Length on every answer

    def do_GET(self):
        if self.path.split("?")[0] == "/hello":
            self.answer(200, HELLO, 0)
        else:
            self.answer(404, NOT_FOUND, 0)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(200, body, len(body))

    def answer(self, status, body, request_body_bytes):
        # Printed before the answer leaves, so the client never finishes before the server
        # has reported every request.
        emit(event="served", side="server", pid=os.getpid(), client_port=self.client_address[1],
             method=self.command, path=self.path, status=status,
             request_body_bytes=request_body_bytes, response_body_bytes=len(body))
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.count_one()

    def log_message(self, format, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.remaining = REQUESTS
        self.lock = threading.Lock()
        self.all_served = threading.Event()

    def count_one(self):
        with self.lock:
            self.remaining -= 1
            if self.remaining == 0:
                self.all_served.set()


def serve():
    server = Server()
    # A short poll interval: shutdown() waits for it.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    emit(event="ready", side="server", pid=os.getpid(), port=server.server_address[1])
    served = server.all_served.wait(RUN_LIMIT)
    server.shutdown()
    if not served:
        sys.exit(f"server: {server.remaining} requests never came")


def keep_alive_requests(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for method, path, body in [("GET", "/hello", None), ("GET", "/missing", None),
                               ("POST", "/echo", b"ping-payload-0123456789"),
                               ("GET", "/hello?n=2", None)]:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        data = response.read()
        emit(event="request", side="client", pid=os.getpid(), connection=1,
             local_port=conn.sock.getsockname()[1], method=method,
             path=path, status=response.status, request_body_bytes=len(body or b""),
             response_body_bytes=len(data))
    conn.close()


def pipelined_requests(port):
    host = f"Host: 127.0.0.1:{port}\r\n"
    wire = (f"GET /hello HTTP/1.1\r\n{host}\r\n"
            f"GET /missing HTTP/1.1\r\n{host}Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(wire)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    # Two answers back to back: status line, headers, Content-Length bytes of body.
    for path in ["/hello", "/missing"]:
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(l.split(":")[1]) for l in lines if l.lower().startswith("content-length"))
        received = rest[length:]
        emit(event="request", side="client", pid=os.getpid(), connection=2,
             local_port=local_port, method="GET",
             path=path, status=status, request_body_bytes=0, response_body_bytes=length)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--go")
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    if args.go:
        deadline = time.monotonic() + RUN_LIMIT
        while not os.path.exists(args.go):
            if time.monotonic() > deadline:
                sys.exit("go file never appeared")
            time.sleep(0.02)
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                              text=True)
    try:
        ready = json.loads(server.stdout.readline())
        write_line(json.dumps(ready) + "\n")
        copier = threading.Thread(
            target=lambda: [write_line(line) for line in server.stdout], daemon=True)
        copier.start()
        keep_alive_requests(ready["port"])
        pipelined_requests(ready["port"])
        status = server.wait(RUN_LIMIT)
        copier.join(RUN_LIMIT)
    finally:
        if server.poll() is None:
            server.kill()
    if status != 0:
        sys.exit(f"server exited with {status}")
    emit(event="done", requests=REQUESTS)


main()
