"""Known HTTP/1.1 requests on loopback, for the protocols tracer: an http.server in a thread
and an http.client in the main thread, in one process.

usage: http_talk.py [--tls CERT KEY] -- one keep-alive connection carries GET /items?page=2 (200), GET /missing
       (404), POST /echo with a 1000-byte body (200, echoed back) and HEAD /items?page=2 (200,
       no body); a second connection carries GET /items?page=3; a third, DELETE /v3/users/ID
       (204) for three users, their ids in the forms keystone's ids take (a UUID, a UUID's
       32 hex digits, a number).

With --tls, the server speaks HTTPS with the certificate CERT (for 127.0.0.1) and its key
KEY, and the client trusts CERT.

Prints pid= and port=, then per request in order: request=METHOD PATH STATUS REQUEST_BYTES
RESPONSE_BYTES (body bytes as sent by the client and received from the server).
"""
import http.client
import http.server
import os
import ssl
import sys
import threading
import time
import uuid

ITEMS = b'{"items": [1, 2, 3]}'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, body, send_body=True):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/items"):
            self.reply(ITEMS)
        else:
            self.send_error(404)

    def do_HEAD(self):
        self.reply(ITEMS, send_body=False)

    def do_DELETE(self):
        self.send_response(204)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(body)

    def log_message(self, *args):
        pass


def request(conn, method, path, body=None):
    conn.request(method, path, body=body)
    response = conn.getresponse()
    received = response.read()
    print(f"request={method} {path} {response.status} {len(body or b'')} {len(received)}")


def client_requests(port, connect):
    conn = connect("127.0.0.1", port)
    request(conn, "GET", "/items?page=2")
    request(conn, "GET", "/missing")
    request(conn, "POST", "/echo", b"x" * 1000)
    request(conn, "HEAD", "/items?page=2")
    conn.close()
    other = connect("127.0.0.1", port)
    request(other, "GET", "/items?page=3")
    other.close()
    users = connect("127.0.0.1", port)
    for user in (str(uuid.uuid4()), uuid.uuid4().hex, "1042"):
        request(users, "DELETE", f"/v3/users/{user}")
    users.close()


def main():
    print(f"pid={os.getpid()}", flush=True)
    # Like a service that has been running a while: the python tracer has found the
    # interpreter.
    time.sleep(0.5)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    connect = http.client.HTTPConnection
    if sys.argv[1:2] == ["--tls"]:
        cert, key = sys.argv[2:4]
        served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        served.load_cert_chain(cert, key)
        server.socket = served.wrap_socket(server.socket, server_side=True)
        trusted = ssl.create_default_context(cafile=cert)

        def connect(host, port):
            return http.client.HTTPSConnection(host, port, context=trusted)
    port = server.server_address[1]
    print(f"port={port}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client_requests(port, connect)
    server.shutdown()
    server.server_close()
    print("done", flush=True)


main()
