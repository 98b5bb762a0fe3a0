"""WSGI plumbing: webob's Request and wsgify, paste's filter."""
import json


STATUS = {200: "200 OK", 201: "201 Created", 400: "400 Bad Request", 401: "401 Unauthorized",
          403: "403 Forbidden", 404: "404 Not Found", 413: "413 Request Entity Too Large",
          500: "500 Internal Server Error"}


class Request:
    def __init__(self, environ):
        self.environ = environ

    @property
    def method(self):
        return self.environ["REQUEST_METHOD"]

    @property
    def path(self):
        return self.environ.get("PATH_INFO", "/")

    @property
    def headers(self):
        return {key[5:].replace("_", "-").title(): value
                for key, value in self.environ.items() if key.startswith("HTTP_")}

    @property
    def json(self):
        return self.environ.get("openstack.params", {})

    @property
    def context(self):
        return self.environ["openstack.context"]

    def call_application(self, application, start_response):
        return application(self.environ, start_response)


def json_response(start_response, status, body, headers=()):
    data = json.dumps(body).encode()
    start_response(STATUS[status], [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(data))), *headers])
    return [data]


class Middleware:
    """paste's filter: wraps the next application; `process_request` may answer instead of
    it, `process_response` may add headers to its answer."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        return self.wsgify(Request(environ), start_response)

    def wsgify(self, request, start_response):
        answer = self.process_request(request)
        if answer is not None:
            return json_response(start_response, *answer)

        def replying(status, headers, exc_info=None):
            return start_response(status, self.process_response(request, headers), exc_info)

        return request.call_application(self.application, replying)

    def process_request(self, request):
        return None

    def process_response(self, request, headers):
        return headers
