"""Round trips over a TLS connection (or in clear), both ends in this process: the cost of
reading TLS plaintext through libssl's uprobes.

usage: tls_echo.py tls|clear|deep ROUND_TRIPS RESULT_FILE — a client writes 64 bytes and
reads them back from a server (a child process), over a loopback TCP connection; with `tls`,
both ends are OpenSSL (Python's ssl module: SSL_write_ex and SSL_read_ex, four SSL calls a
round trip), with a certificate made here by `openssl`; with `deep`, in clear, the client makes
each round trip from DEEP_FRAMES Python frames deep, as a service's ORM does (each send after a
receive is a request: under protocols+python, a stack taken and walked). Writes the mean ns per
round trip to RESULT_FILE.
"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

MESSAGE = b"x" * 64
DEEP_FRAMES = 100


def certificate(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True)
    return cert, key


def read_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def echo(sock, round_trips):
    for _ in range(round_trips):
        sock.sendall(read_exactly(sock, len(MESSAGE)))
    sock.close()


def nested(depth, call):
    """Runs `call` under `depth` more Python frames."""
    if depth == 0:
        return call()
    return nested(depth - 1, call)


def main():
    mode, round_trips, result = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory() as directory:
        cert, key = certificate(directory) if mode == "tls" else (None, None)
        listener = socket.create_server(("127.0.0.1", 0))
        child = os.fork()
        if child == 0:
            # The server: a process of its own, so that the two ends do not share a GIL.
            server, _ = listener.accept()
            server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if mode == "tls":
                served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                served.load_cert_chain(cert, key)
                server = served.wrap_socket(server, server_side=True)
            echo(server, round_trips)
            os._exit(0)
        client = socket.create_connection(listener.getsockname())
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if mode == "tls":
            trusted = ssl.create_default_context(cafile=cert)
            client = trusted.wrap_socket(client, server_hostname="127.0.0.1")
        def round_trip():
            client.sendall(MESSAGE)
            read_exactly(client, len(MESSAGE))

        depth = DEEP_FRAMES if mode == "deep" else 0
        start = time.monotonic_ns()
        for _ in range(round_trips):
            nested(depth, round_trip)
        elapsed = time.monotonic_ns() - start
        client.close()
        os.waitpid(child, 0)
    with open(result, "w") as out:
        out.write(f"{elapsed / round_trips:.2f}\n")


main()
