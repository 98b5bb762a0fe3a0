"""Known conversations on loopback sockets, for the protocols tracer.

usage: socket_talk.py talk DIR -- for each family (tcp = IPv4, tcp6 = IPv6, unix = a socket in DIR),
       a client (the main thread) connects to a server (a thread of the same process) and sends
       it a request through every send syscall Python has (send, sendmsg, writev), in pieces
       small enough to be copied whole; the server reads it through every receive syscall
       (recv_into, read, recvmsg, readv), then answers in 10000-byte sends, read by the client
       in pieces of at most 4096 bytes.
       socket_talk.py preopened GO_FILE -- connects a client to a server (a thread) over IPv4,
       waits for GO_FILE, then sends an HTTP request and its response over the connection made
       before, and exits without closing it.

Prints pid=, and per family: {family}_client_port= and {family}_server_port= (IP families),
{family}_request= and {family}_response= (bytes each way), {family}_server_uncopied= (bytes
of the server's sends beyond a 4096-byte prefix each). preopened prints pid=, client_port=,
server_port=, request=, response=.
"""
import os
import socket
import sys
import threading
import time

PREFIX = 4096


def request_pieces():
    for _ in range(24):
        yield "send", [b"q" * 4000]
    yield "sendmsg", [b"a" * 10, b"b" * 20]
    yield "writev", [b"c" * 5, b"d" * 7]


def send_request(sock):
    total = 0
    for how, pieces in request_pieces():
        if how == "send":
            sent = sock.send(pieces[0])
        elif how == "sendmsg":
            sent = sock.sendmsg(pieces)
        else:
            sent = os.writev(sock.fileno(), pieces)
        assert sent == sum(map(len, pieces)), (how, sent)
        total += sent
    sock.shutdown(socket.SHUT_WR)
    return total


def read_until_eof(sock):
    """Reads with each receive syscall in turn, 4096 bytes at most per call."""
    total, turn = 0, 0
    buffer = bytearray(PREFIX)
    while True:
        how = turn % 4
        turn += 1
        if how == 0:
            got = sock.recv_into(buffer)
        elif how == 1:
            got = len(os.read(sock.fileno(), PREFIX))
        elif how == 2:
            got = len(sock.recvmsg(PREFIX)[0])
        else:
            got = os.readv(sock.fileno(), [bytearray(1000), bytearray(PREFIX - 1000)])
        if got == 0:
            return total
        total += got


def serve(listener, result):
    conn, _ = listener.accept()
    result["request"] = read_until_eof(conn)
    uncopied = 0
    for _ in range(5):
        sent = conn.send(b"r" * 10000)
        uncopied += max(0, sent - PREFIX)
        result["response"] = result.get("response", 0) + sent
    result["uncopied"] = uncopied
    conn.close()


def talk(name, family, address):
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(1)
    result = {}
    server = threading.Thread(target=serve, args=(listener, result))
    server.start()
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect(listener.getsockname())
    if family != socket.AF_UNIX:
        print(f"{name}_client_port={client.getsockname()[1]}")
        print(f"{name}_server_port={listener.getsockname()[1]}")
    request = send_request(client)
    response = read_until_eof(client)
    client.close()
    server.join()
    listener.close()
    assert result["request"] == request and result["response"] == response
    print(f"{name}_request={request}")
    print(f"{name}_response={response}")
    print(f"{name}_server_uncopied={result['uncopied']}", flush=True)


def preopened(go_file):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    print(f"client_port={client.getsockname()[1]}")
    print(f"server_port={listener.getsockname()[1]}", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            sys.exit("go file never appeared")
        time.sleep(0.02)
    request = b"GET /preopened HTTP/1.1\r\nHost: localhost\r\n\r\n"
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    client.sendall(request)
    assert server.recv(4096) == request
    server.sendall(response)
    assert client.recv(4096) == response
    print(f"request={len(request)}")
    print(f"response={len(response)}", flush=True)
    # Exits with both sockets open: the kernel closes them.
    os._exit(0)


def main():
    print(f"pid={os.getpid()}", flush=True)
    if sys.argv[1] == "talk":
        directory = sys.argv[2]
        talk("tcp", socket.AF_INET, ("127.0.0.1", 0))
        talk("tcp6", socket.AF_INET6, ("::1", 0))
        talk("unix", socket.AF_UNIX, os.path.join(directory, "talk.sock"))
    else:
        preopened(sys.argv[2])


main()
