"""The paste pipeline's filters, as oslo.middleware, keystonemiddleware and pycadf have them."""
import hashlib
import hmac
import json
import time
import uuid

from .base import Middleware, json_response
from .common import LOG, TOKEN_SECRET, token_claims


class HTTPProxyToWSGI(Middleware):
    def process_request(self, request):
        proto = request.environ.get("HTTP_X_FORWARDED_PROTO")
        if proto:
            request.environ["wsgi.url_scheme"] = proto


class RequestId(Middleware):
    def process_request(self, request):
        request.environ["openstack.request_id"] = "req-" + str(uuid.uuid4())

    def process_response(self, request, headers):
        return headers + [("X-Openstack-Request-Id", request.environ["openstack.request_id"])]


class CatchErrors(Middleware):
    def wsgify(self, request, start_response):
        try:
            return super().wsgify(request, start_response)
        except Exception as e:
            status = getattr(e, "status", 500)
            if status == 500:
                LOG.exception("unexpected error")
            return json_response(start_response, status,
                                 {"error": {"code": status, "message": str(e)}})


class CORS(Middleware):
    allowed = ("https://dashboard.example.invalid",)

    def process_response(self, request, headers):
        origin = request.environ.get("HTTP_ORIGIN")
        if origin in self.allowed:
            headers = headers + [("Access-Control-Allow-Origin", origin)]
        return headers


class Healthcheck(Middleware):
    def process_request(self, request):
        if request.path == "/healthcheck":
            return 200, {"status": "OK"}


class RequestBodySizeLimiter(Middleware):
    limit = 114688

    def process_request(self, request):
        if int(request.environ.get("CONTENT_LENGTH") or 0) > self.limit:
            return 413, {"error": {"code": 413, "message": "request too large"}}


class AuthToken(Middleware):
    """keystonemiddleware's auth_token: validates X-Auth-Token (a signed token here, checked
    locally with a cache) and sets the identity headers the service reads."""

    public = ("/v3/auth/tokens",)

    def __init__(self, application):
        super().__init__(application)
        self.cache = {}

    def process_request(self, request):
        if request.method == "POST" and request.path in self.public:
            request.environ["HTTP_X_IDENTITY_STATUS"] = "Anonymous"
            return None
        token = request.environ.get("HTTP_X_AUTH_TOKEN", "")
        claims = self.cache.get(token)
        if claims is None:
            claims = token_claims(token)
            if claims is None:
                return 401, {"error": {"code": 401, "message": "authentication required"}}
            if len(self.cache) > 10000:
                self.cache.clear()
            self.cache[token] = claims
        request.environ["HTTP_X_IDENTITY_STATUS"] = "Confirmed"
        request.environ["HTTP_X_USER_ID"] = str(claims[0])
        request.environ["HTTP_X_PROJECT_ID"] = str(claims[1])


class NormalizingFilter(Middleware):
    """keystone's url_normalize: /v3/users/5/ is /v3/users/5."""

    def process_request(self, request):
        path = request.environ.get("PATH_INFO", "/")
        if len(path) > 1 and path.endswith("/"):
            request.environ["PATH_INFO"] = path.rstrip("/")


class BuildAuthContext(Middleware):
    """keystone's build_auth_context: what auth_token confirmed, as the auth context."""

    def process_request(self, request):
        status = request.environ.get("HTTP_X_IDENTITY_STATUS")
        request.environ["keystone.token_auth"] = {
            "status": status, "user_id": request.environ.get("HTTP_X_USER_ID"),
            "project_id": request.environ.get("HTTP_X_PROJECT_ID")}


class JsonBody(Middleware):
    def process_request(self, request):
        length = int(request.environ.get("CONTENT_LENGTH") or 0)
        if length:
            try:
                body = json.loads(request.environ["wsgi.input"].read(length))
            except ValueError:
                return 400, {"error": {"code": 400, "message": "malformed JSON"}}
            request.environ["openstack.params"] = body


class RequestContext:
    def __init__(self, request_id, user_id, project_id, roles):
        self.request_id = request_id
        self.user_id = user_id
        self.project_id = project_id
        self.roles = roles

    def to_dict(self):
        return {"request_id": self.request_id, "user_id": self.user_id,
                "project_id": self.project_id, "roles": list(self.roles)}


class Context(Middleware):
    def process_request(self, request):
        user_id = request.environ.get("HTTP_X_USER_ID")
        # Role names come from the token in Keystone; here every authenticated caller is a
        # member and a reader, and user 1 is the admin.
        roles = ("member", "reader") + (("admin",) if user_id == "1" else ())
        request.environ["openstack.context"] = RequestContext(
            request.environ["openstack.request_id"], user_id,
            request.environ.get("HTTP_X_PROJECT_ID"), roles if user_id else ())


class Audit(Middleware):
    """pycadf's audit middleware: notes what was asked and how it ended, in the log."""

    def wsgify(self, request, start_response):
        started = time.perf_counter()
        outcome = []

        def recording(status, headers, exc_info=None):
            outcome.append(status)
            return start_response(status, headers, exc_info)

        try:
            return super().wsgify(request, recording)
        finally:
            LOG.info("%s %s %s %s %.1f ms", request.environ["openstack.request_id"],
                     request.method, request.path, outcome[0] if outcome else "-",
                     (time.perf_counter() - started) * 1000)


class Profiler(Middleware):
    """osprofiler's WSGI middleware: joins a trace when the request carries a signed one."""

    def process_request(self, request):
        trace = request.environ.get("HTTP_X_TRACE_INFO")
        if trace and request.environ.get("HTTP_X_TRACE_HMAC") != hmac.new(
                TOKEN_SECRET, trace.encode(), hashlib.sha256).hexdigest():
            return 400, {"error": {"code": 400, "message": "bad trace signature"}}


class AccessLog(Middleware):
    """The request log line of oslo.log's WSGI servers: method, path, status, size."""

    def process_response(self, request, headers):
        size = next((v for k, v in headers if k == "Content-Length"), "-")
        request.environ["openstack.access"] = f"{request.method} {request.path} {size}"
        return headers


class Versions(Middleware):
    """The URL map of an API with versions: /v3/... goes to the v3 router."""

    def process_request(self, request):
        if not request.path.startswith("/v3/"):
            return 404, {"error": {"code": 404, "message": "unknown API version"}}
