"""A small HTTP service on the standard library for `cargo xtask bench`: http.server's
ThreadingHTTPServer with HTTP/1.1 keep-alive, a thread per connection, and handlers built like
a web framework's (a chain of tweens: request id, timing, error catching, access control,
content negotiation, caching headers, rate limiting, ...; a router; view decorators; a
repository with a cache), so that the code answering a request runs about 70 Python frames
deep. Responses are small JSON documents. The request mix is xtask/bench/load.lua's `http`.

usage: [BENCH_DEPTH_FILE=FILE] python http_service.py PORT
    serves on 127.0.0.1:PORT until killed. With BENCH_DEPTH_FILE, each request appends to FILE
    the number of Python frames on the stack where the item is looked up, to check the depth
    the benchmark claims.

Endpoints: GET /items/ID (an item, made on first use), POST /items (stores a JSON item).
"""
import functools
import hashlib
import http.server
import json
import os
import re
import sys
import threading
import time
import uuid

DEPTH_FILE = os.environ.get("BENCH_DEPTH_FILE")


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Request:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.attributes = {}


class Response:
    def __init__(self, status, body, headers=None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


# --- the repository ------------------------------------------------------------------------

class Repository:
    """Items in memory, behind a lock (the handler threads share it)."""

    def __init__(self):
        self.items = {}
        self.lock = threading.Lock()

    def load(self, item_id):
        if DEPTH_FILE:
            record_depth()
        with self.lock:
            item = self.items.get(item_id)
            if item is None:
                item = {"id": item_id, "name": f"item-{item_id}", "size": item_id * 3}
                self.items[item_id] = item
            return dict(item)

    def store(self, item):
        if DEPTH_FILE:
            record_depth()
        with self.lock:
            item_id = len(self.items) + 1000
            self.items[item_id] = dict(item, id=item_id)
            return self.items[item_id]


def record_depth():
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    with open(DEPTH_FILE, "a") as out:
        out.write(f"{depth}\n")


class CachedRepository:
    """Where services put memcached in front of their storage: here it only counts the
    lookups, and every one goes through to the repository (a cache disabled by default)."""

    def __init__(self, backend):
        self.backend = backend
        self.lookups = 0

    def load(self, item_id):
        self.lookups += 1
        return self.backend.load(item_id)

    def store(self, item):
        return self.backend.store(item)


def instrumented(method):
    """Counts calls and time per method, as a metrics library's decorator does."""
    stats = {"calls": 0, "seconds": 0.0}

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            stats["calls"] += 1
            stats["seconds"] += time.perf_counter() - started
    return wrapper


class ItemManager:
    """Business rules above the storage."""

    def __init__(self, repository):
        self.repository = repository

    @instrumented
    def get(self, item_id):
        if item_id <= 0:
            raise HttpError(404, "no such item")
        return self.repository.load(item_id)

    @instrumented
    def create(self, item):
        if not isinstance(item.get("name"), str):
            raise HttpError(400, "an item has a name")
        return self.repository.store(item)


class ItemService:
    """The API's view of the manager: what a caller may see."""

    def __init__(self, manager):
        self.manager = manager

    def get(self, item_id):
        return self.manager.get(item_id)

    def create(self, item):
        return self.manager.create(item)


items = ItemService(ItemManager(CachedRepository(Repository())))


# --- views and their decorators ------------------------------------------------------------

def json_view(view):
    @functools.wraps(view)
    def wrapper(request, **params):
        status, body = view(request, **params)
        return Response(status, json.dumps(body, separators=(",", ":")).encode(),
                        {"Content-Type": "application/json"})
    return wrapper


def requires_json_body(view):
    @functools.wraps(view)
    def wrapper(request, **params):
        if request.method == "POST":
            try:
                request.attributes["json"] = json.loads(request.body or b"{}")
            except ValueError:
                raise HttpError(400, "malformed JSON")
        return view(request, **params)
    return wrapper


def permission(name):
    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, **params):
            if name not in request.attributes.get("permissions", ()):
                raise HttpError(403, f"{name} is needed")
            return view(request, **params)
        return wrapper
    return decorator


def int_params(*names):
    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, **params):
            for name in names:
                params[name] = int(params[name])
            return view(request, **params)
        return wrapper
    return decorator


@json_view
@requires_json_body
@permission("items:read")
@int_params("item_id")
def get_item(request, item_id):
    return 200, items.get(item_id)


@json_view
@requires_json_body
@permission("items:write")
def create_item(request):
    return 201, items.create(request.attributes["json"])


class Router:
    def __init__(self):
        self.routes = [("GET", re.compile(r"/items/(?P<item_id>\d+)$"), get_item),
                       ("POST", re.compile(r"/items$"), create_item)]

    def __call__(self, request):
        for method, pattern, view in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                return self.call_view(view, request, match.groupdict())
        raise HttpError(404, "not found")

    def call_view(self, view, request, params):
        return view(request, **params)


# --- tweens: each wraps the next handler, like Pyramid's ------------------------------------

class Tween:
    def __init__(self, handler):
        self.handler = handler

    def __call__(self, request):
        self.before(request)
        response = self.call_next(request)
        return self.after(request, response)

    def call_next(self, request):
        return self.handler(request)

    def before(self, request):
        pass

    def after(self, request, response):
        return response


class RequestIdTween(Tween):
    def before(self, request):
        request.attributes["request_id"] = request.headers.get("X-Request-Id") or uuid.uuid4().hex

    def after(self, request, response):
        response.headers["X-Request-Id"] = request.attributes["request_id"]
        return response


class TimingTween(Tween):
    def before(self, request):
        request.attributes["started"] = time.perf_counter()

    def after(self, request, response):
        elapsed = time.perf_counter() - request.attributes["started"]
        response.headers["Server-Timing"] = f"app;dur={elapsed * 1000:.2f}"
        return response


class ErrorTween(Tween):
    def call_next(self, request):
        try:
            return super().call_next(request)
        except HttpError as e:
            body = json.dumps({"error": str(e)}).encode()
            return Response(e.status, body, {"Content-Type": "application/json"})


class AuthTween(Tween):
    def before(self, request):
        request.attributes["permissions"] = ("items:read", "items:write")


class CorsTween(Tween):
    def after(self, request, response):
        if "Origin" in request.headers:
            response.headers["Access-Control-Allow-Origin"] = request.headers["Origin"]
        return response


class NegotiationTween(Tween):
    def before(self, request):
        accept = request.headers.get("Accept", "*/*")
        if "json" not in accept and "*/*" not in accept:
            raise HttpError(406, "only JSON is served")


class ETagTween(Tween):
    def after(self, request, response):
        response.headers["ETag"] = '"' + hashlib.md5(response.body).hexdigest() + '"'
        return response


class CacheControlTween(Tween):
    def after(self, request, response):
        response.headers["Cache-Control"] = "no-cache" if request.method == "POST" \
            else "max-age=5"
        return response


class RateLimitTween(Tween):
    def __init__(self, handler):
        super().__init__(handler)
        self.window = {}

    def before(self, request):
        second = int(time.monotonic())
        self.window = {second: self.window.get(second, 0) + 1}


class MetricsTween(Tween):
    def __init__(self, handler):
        super().__init__(handler)
        self.counts = {}

    def after(self, request, response):
        key = (request.method, response.status)
        self.counts[key] = self.counts.get(key, 0) + 1
        return response


class SecurityHeadersTween(Tween):
    def after(self, request, response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        return response


class MethodOverrideTween(Tween):
    def before(self, request):
        override = request.headers.get("X-HTTP-Method-Override")
        if override:
            request.method = override.upper()


class TransactionTween(Tween):
    """pyramid_tm: a unit of work per request (nothing to commit in memory)."""

    def call_next(self, request):
        request.attributes["transaction"] = []
        try:
            return super().call_next(request)
        finally:
            request.attributes["transaction"].clear()


class TracingTween(Tween):
    """osprofiler's: a span per request, its id handed down in the request."""

    def before(self, request):
        request.attributes["span"] = (request.headers.get("X-Trace-Id") or uuid.uuid4().hex)[:16]


class HostTween(Tween):
    allowed = ("127.0.0.1", "localhost")

    def before(self, request):
        host = (request.headers.get("Host") or "127.0.0.1").rsplit(":", 1)[0]
        if host not in self.allowed:
            raise HttpError(400, f"unknown host {host}")


class LocaleTween(Tween):
    def before(self, request):
        language = request.headers.get("Accept-Language", "en").split(",")[0]
        request.attributes["locale"] = language.split("-")[0] or "en"


class SessionTween(Tween):
    def before(self, request):
        cookie = request.headers.get("Cookie", "")
        request.attributes["session"] = dict(part.strip().split("=", 1)
                                             for part in cookie.split(";") if "=" in part)


class CsrfTween(Tween):
    def before(self, request):
        session = request.attributes["session"]
        if request.method == "POST" and "csrf" in session \
                and request.headers.get("X-CSRF-Token") != session["csrf"]:
            raise HttpError(403, "bad CSRF token")


class CompressionTween(Tween):
    minimum = 1024

    def after(self, request, response):
        if len(response.body) >= self.minimum \
                and "gzip" in request.headers.get("Accept-Encoding", ""):
            response.headers["Vary"] = "Accept-Encoding"
        return response


class AuditTween(Tween):
    def after(self, request, response):
        request.attributes["audit"] = (request.method, request.path, response.status)
        return response


class DeprecationTween(Tween):
    def after(self, request, response):
        if request.path.startswith("/v1/"):
            response.headers["Deprecation"] = "true"
        return response


class MicroversionTween(Tween):
    """Nova's API microversions: the version asked in a header, echoed in the answer."""

    def before(self, request):
        request.attributes["version"] = request.headers.get("OpenStack-API-Version", "1.0")

    def after(self, request, response):
        response.headers["OpenStack-API-Version"] = request.attributes["version"]
        return response


class MaintenanceTween(Tween):
    maintenance = False

    def before(self, request):
        if self.maintenance and request.method != "GET":
            raise HttpError(503, "read-only during maintenance")


TWEENS = [RequestIdTween, TracingTween, TimingTween, ErrorTween, MetricsTween, AuditTween,
          SecurityHeadersTween, HostTween, MaintenanceTween, AuthTween, CorsTween, NegotiationTween,
          MicroversionTween, LocaleTween, SessionTween, CsrfTween, MethodOverrideTween, CompressionTween,
          ETagTween, CacheControlTween, DeprecationTween, RateLimitTween, TransactionTween]


def make_app():
    app = Router()
    for tween in reversed(TWEENS):
        app = tween(app)
    return app


# --- the server ----------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle's algorithm would hold the
    # body until the client acknowledged the headers (a delayed ACK: 40 ms).
    disable_nagle_algorithm = True
    app = make_app()

    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, self.headers, body)
        response = self.app(request)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # The load generator resets its connections when it stops: not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
