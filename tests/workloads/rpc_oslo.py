"""oslo.messaging RPC over RabbitMQ: a server process and a client process, K call()s of a
method that sleeps a known time and L cast()s, with everything each side did printed.

usage: rpc_oslo.py TRANSPORT_URL [--calls K] [--casts L] [--go GO_FILE] [--tls CA_FILE]

With --tls, both sides talk to the broker over TLS (oslo.messaging's [oslo_messaging_rabbit]
ssl, from a configuration file as a service has it), trusting the certificate CA_FILE.

Two processes, as in OpenStack (nova-api calling nova-conductor): each side has its own pid
and its own AMQP connections, so a trace can be asserted per side, and a call's request and
its reply travel on different connections of different processes. This program is the
client; it starts the server as a child (this script with --serve), so tracing this
program's command line follows both. With --go, it waits for GO_FILE before starting
either, so a tracer attached meanwhile sees every connection from its first byte.

Calls go to the topic (any server of it), casts to the one server by name, so both of
oslo.messaging's routings are on the wire. The server exits once it has handled K calls and
L casts; both sides are bounded in time (calls time out after 10 s, the whole run after
60 s). Prints JSON lines (the server's are relayed by the client, tagged "side": "server"):
  {"event": "config", "exchange": "openstack", "topic": TOPIC, "server": SERVER,
   "call_method": ..., "cast_method": ..., "call_sleep_ms": ...}
  {"event": "ready", "side": "server", "pid": ...}
  {"event": "call", "side": "client", "pid": ..., "method": ..., "seq": I, "result": I,
   "latency_ms": ...}
  {"event": "cast", "side": "client", "pid": ..., "method": ..., "seq": I}
  {"event": "handled", "side": "server", "pid": ..., "kind": "call"|"cast", "method": ...,
   "seq": I}
  {"event": "done", "calls": K, "casts": L}
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import oslo_messaging
from oslo_config import cfg

EXCHANGE = "openstack"  # oslo.messaging's default control_exchange
# The client's pid names the topic (the server is told it), so that runs sharing a broker
# never take each other's messages.
TOPIC = f"scalpels_test_{os.getpid()}"
SERVER = "server-1"
CALL_METHOD = "slow_echo"
CAST_METHOD = "record_event"
CALL_SLEEP = 0.02
RUN_LIMIT = 60
STDOUT = threading.Lock()


def emit(**fields):
    write_line(json.dumps(fields) + "\n")


def write_line(line):
    with STDOUT:
        sys.stdout.write(line)
        sys.stdout.flush()


TLS_CA = None


def transport(url):
    # The global configuration, as in a service: oslo.messaging registers some of its
    # options (tracing) on it alone.
    args = []
    if TLS_CA:
        config = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        config.write(f"[oslo_messaging_rabbit]\nssl = true\nssl_ca_file = {TLS_CA}\n")
        config.close()
        args = ["--config-file", config.name]
    cfg.CONF(args, project="scalpels-test")
    return oslo_messaging.get_rpc_transport(cfg.CONF, url=url)


class Endpoint:
    def __init__(self, expected):
        self.remaining = expected
        self.lock = threading.Lock()
        self.all_handled = threading.Event()

    def _handled(self, kind, method, seq):
        emit(event="handled", side="server", pid=os.getpid(), kind=kind, method=method, seq=seq)
        with self.lock:
            self.remaining -= 1
            if self.remaining == 0:
                self.all_handled.set()

    def slow_echo(self, ctxt, seq):
        time.sleep(CALL_SLEEP)
        self._handled("call", CALL_METHOD, seq)
        return seq

    def record_event(self, ctxt, seq):
        self._handled("cast", CAST_METHOD, seq)


def serve(url, expected):
    rpc = transport(url)
    endpoint = Endpoint(expected)
    target = oslo_messaging.Target(topic=TOPIC, server=SERVER)
    server = oslo_messaging.get_rpc_server(rpc, target, [endpoint])
    server.start()
    emit(event="ready", side="server", pid=os.getpid())
    handled = endpoint.all_handled.wait(RUN_LIMIT)
    server.stop()
    server.wait()
    rpc.cleanup()
    if not handled:
        sys.exit(f"server: {endpoint.remaining} messages never arrived")


def relay(server):
    """Copies the server's lines to this program's stdout from a thread, returned once the
    server said it is ready."""
    ready = threading.Event()

    def copy():
        for line in server.stdout:
            write_line(line)
            if json.loads(line).get("event") == "ready":
                ready.set()

    copier = threading.Thread(target=copy, daemon=True)
    copier.start()
    if not ready.wait(RUN_LIMIT):
        server.kill()
        sys.exit("server never became ready")
    return copier


def client(url, calls, casts):
    rpc = transport(url)
    target = oslo_messaging.Target(topic=TOPIC)
    rpc_client = oslo_messaging.get_rpc_client(rpc, target, timeout=10)
    for seq in range(calls):
        start = time.monotonic()
        result = rpc_client.call({}, CALL_METHOD, seq=seq)
        latency = time.monotonic() - start
        if result != seq:
            sys.exit(f"call {seq} returned {result}")
        emit(event="call", side="client", pid=os.getpid(), method=CALL_METHOD, seq=seq,
             result=result, latency_ms=round(latency * 1000, 3))
    to_server = rpc_client.prepare(server=SERVER)
    for seq in range(casts):
        to_server.cast({}, CAST_METHOD, seq=seq)
        emit(event="cast", side="client", pid=os.getpid(), method=CAST_METHOD, seq=seq)
    rpc.cleanup()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--casts", type=int, default=3)
    parser.add_argument("--go")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--tls")
    parser.add_argument("--topic")
    args = parser.parse_args()
    global TLS_CA, TOPIC
    TLS_CA = args.tls
    TOPIC = args.topic or TOPIC
    if args.serve:
        serve(args.url, args.calls + args.casts)
        return
    if args.go:
        deadline = time.monotonic() + RUN_LIMIT
        while not os.path.exists(args.go):
            if time.monotonic() > deadline:
                sys.exit("go file never appeared")
            time.sleep(0.02)
    emit(event="config", exchange=EXCHANGE, topic=TOPIC, server=SERVER,
         call_method=CALL_METHOD, cast_method=CAST_METHOD, call_sleep_ms=CALL_SLEEP * 1000)
    server = subprocess.Popen(
        [sys.executable, __file__, args.url, "--serve", "--calls", str(args.calls),
         "--casts", str(args.casts), "--topic", TOPIC]
        + (["--tls", args.tls] if args.tls else []),
        stdout=subprocess.PIPE, text=True)
    try:
        copier = relay(server)
        client(args.url, args.calls, args.casts)
        status = server.wait(RUN_LIMIT)
        copier.join(RUN_LIMIT)
    finally:
        if server.poll() is None:
            server.kill()
    if status != 0:
        sys.exit(f"server exited with {status}")
    emit(event="done", calls=args.calls, casts=args.casts)


main()
