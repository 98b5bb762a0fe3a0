"""Controllers, with policy enforcement and schema validation."""
import functools

from .common import LOG, BadRequest, Forbidden, InternalError, NotFound, token_claims, token_for
from .identity import assignments, identity


POLICY = {
    "admin_required": "role:admin",
    "owner": "user_id:%(target.user_id)s",
    "admin_or_owner": "rule:admin_required or rule:owner",
    "identity:get_user": "rule:admin_or_owner or role:reader",
    "identity:validate_token": "rule:admin_or_owner or role:service or role:member",
    "identity:list_grants": "rule:admin_required or role:member or role:reader",
}


def check_rule(rule, context, target):
    """oslo.policy's checks, interpreted: `a or b`, `rule:NAME`, `role:NAME`, `KEY:VALUE`."""
    for alternative in rule.split(" or "):
        kind, _, value = alternative.partition(":")
        if kind == "rule" and check_rule(POLICY[value], context, target):
            return True
        if kind == "role" and value in context.roles:
            return True
        if kind not in ("rule", "role") and value % {"target.user_id": target.get("user_id")} \
                == str(getattr(context, kind, None)):
            return True
    return False


def protected(action):
    def decorator(function):
        @functools.wraps(function)
        def wrapper(controller, request, **params):
            if not check_rule(POLICY[action], request.context, params):
                raise Forbidden(f"{action} is not allowed")
            return function(controller, request, **params)
        return wrapper
    return decorator


def validated(schema):
    """jsonschema in miniature: required keys and types, recursively."""
    def check(value, spec, where):
        if isinstance(spec, dict):
            if not isinstance(value, dict):
                raise BadRequest(f"{where} must be an object")
            for key, sub in spec.items():
                if key not in value:
                    raise BadRequest(f"{where}.{key} is required")
                check(value[key], sub, f"{where}.{key}")
        elif not isinstance(value, spec):
            raise BadRequest(f"{where} must be {spec.__name__}")

    def decorator(function):
        @functools.wraps(function)
        def wrapper(controller, request, **params):
            check(request.json, schema, "body")
            return function(controller, request, **params)
        return wrapper
    return decorator


def expected_errors(*statuses):
    """nova's decorator: an error the API does not document becomes a 500."""
    def decorator(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception as e:
                if getattr(e, "status", 500) in statuses:
                    raise
                LOG.error("unexpected error in %s: %s", function.__qualname__, e)
                raise InternalError("unexpected API error") from e
        return wrapper
    return decorator


AUTH_SCHEMA = {"auth": {"identity": {"methods": list,
                                     "password": {"user": {"id": str, "password": str}}},
                        "scope": {"project": {"id": str}}}}


class AuthController:
    @expected_errors(400, 401, 404)
    @validated(AUTH_SCHEMA)
    def authenticate(self, request):
        auth = request.json["auth"]
        user_id = int(auth["identity"]["password"]["user"]["id"])
        project_id = int(auth["scope"]["project"]["id"])
        user, roles = identity.authenticate(request.context, user_id,
                                            auth["identity"]["password"]["user"]["password"],
                                            project_id)
        token = token_for(user_id, project_id)
        body = {"token": {"methods": ["password"], "user": {"id": str(user["id"]),
                                                             "name": user["name"]},
                          "project": {"id": str(project_id)}, "roles": roles,
                          "expires_at": "2026-12-31T23:59:59Z"}}
        return 201, body, [("X-Subject-Token", token)]

    @expected_errors(401, 403, 404)
    @protected("identity:validate_token")
    def validate(self, request):
        claims = token_claims(request.headers.get("X-Subject-Token", ""))
        if claims is None:
            raise NotFound("the token is not valid")
        user, project, roles = identity.validate(request.context, *claims)
        body = {"token": {"user": {"id": str(user["id"]), "name": user["name"]},
                          "project": {"id": str(project["id"]), "name": project["name"]},
                          "roles": roles}}
        return 200, body, [("X-Subject-Token", request.headers["X-Subject-Token"])]


class UserController:
    @expected_errors(403, 404)
    @protected("identity:get_user")
    def get(self, request, user_id):
        user, projects = identity.get_user_with_projects(request.context, int(user_id))
        user = {k: v for k, v in user.items() if k != "password_hash"}
        return 200, {"user": user, "projects": projects}, []


class GrantController:
    @expected_errors(403, 404)
    @protected("identity:list_grants")
    def list(self, request, project_id, user_id):
        project, roles = assignments.project_roles(request.context, int(project_id),
                                                   int(user_id))
        return 200, {"project": project, "roles": roles}, []
