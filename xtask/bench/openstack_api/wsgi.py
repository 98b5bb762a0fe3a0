"""The application: routes, the resource wrapper, and the pipeline gunicorn serves as
`openstack_api.wsgi:app`."""
import logging
import os
import re

from .base import Request, json_response
from .common import LOG, BadRequest
from .controllers import AuthController, GrantController, UserController
from .middleware import (CORS, AccessLog, Audit, AuthToken, BuildAuthContext, CatchErrors,
                         Context, Healthcheck, HTTPProxyToWSGI, JsonBody, NormalizingFilter,
                         Profiler, RequestBodySizeLimiter, RequestId, Versions)


class Router:
    """routes' mapper: a path and method to a controller's action."""

    def __init__(self):
        self.routes = []
        auth, users, grants = AuthController(), UserController(), GrantController()
        self.connect("POST", r"/v3/auth/tokens", auth.authenticate)
        self.connect("GET", r"/v3/auth/tokens", auth.validate)
        self.connect("GET", r"/v3/users/(?P<user_id>\d+)", users.get)
        self.connect("GET", r"/v3/projects/(?P<project_id>\d+)/users/(?P<user_id>\d+)/roles",
                     grants.list)

    def connect(self, method, pattern, action):
        self.routes.append((method, re.compile(pattern + "$"), Resource(action)))

    def __call__(self, environ, start_response):
        request = Request(environ)
        for method, pattern, resource in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                return resource(request, start_response, match.groupdict())
        return json_response(start_response, 404, {"error": {"code": 404,
                                                             "message": "not found"}})


class Resource:
    """The wsgi.Resource of nova/keystone: calls the action, serializes its result."""

    def __init__(self, action):
        self.action = action

    def __call__(self, request, start_response, params):
        status, body, headers = self._process_stack(request, params)
        return json_response(start_response, status, body, headers)

    def _process_stack(self, request, params):
        if request.method == "POST" and not isinstance(request.json, dict):
            raise BadRequest("the body is not a JSON object")
        return self.dispatch(request, params)

    def dispatch(self, request, params):
        return self.action(request, **params)


def setup_logging():
    log_dir = os.environ.get("BENCH_LOG_DIR")
    if not log_dir:
        return
    handler = logging.FileHandler(os.path.join(log_dir, f"api-{os.getpid()}.log"))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)


def make_app():
    """The paste pipeline, outermost first."""
    app = Router()
    for middleware in reversed([HTTPProxyToWSGI, RequestId, CatchErrors, CORS, Healthcheck,
                                RequestBodySizeLimiter, Profiler, NormalizingFilter, AuthToken,
                                BuildAuthContext, JsonBody, Context, AccessLog, Audit,
                                Versions]):
        app = middleware(app)
    return app


setup_logging()
app = make_app()
