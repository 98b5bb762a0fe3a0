"""Round trips over a TLS connection (or in clear), both ends in this process: the cost of
reading TLS plaintext through libssl's uprobes.

usage: tls_echo.py tls|clear ROUND_TRIPS RESULT_FILE — a client thread writes 64 bytes and
reads them back from a server thread, over a loopback TCP connection; with `tls`, both ends
are OpenSSL (Python's ssl module: SSL_write_ex and SSL_read_ex, four SSL calls a round trip),
with a certificate made here by `openssl`. Writes the mean ns per round trip to RESULT_FILE.
"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

MESSAGE = b"x" * 64


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


def main():
    mode, round_trips, result = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "tls":
        with tempfile.TemporaryDirectory() as directory:
            cert, key = certificate(directory)
            served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            served.load_cert_chain(cert, key)
            trusted = ssl.create_default_context(cafile=cert)
            handshake = threading.Thread(
                target=lambda: results.append(served.wrap_socket(server, server_side=True)))
            results = []
            handshake.start()
            client = trusted.wrap_socket(client, server_hostname="127.0.0.1")
            handshake.join()
            server = results[0]
    thread = threading.Thread(target=echo, args=(server, round_trips))
    thread.start()
    start = time.monotonic_ns()
    for _ in range(round_trips):
        client.sendall(MESSAGE)
        read_exactly(client, len(MESSAGE))
    elapsed = time.monotonic_ns() - start
    thread.join()
    client.close()
    with open(result, "w") as out:
        out.write(f"{elapsed / round_trips:.2f}\n")


main()
