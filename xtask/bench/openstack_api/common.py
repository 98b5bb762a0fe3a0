"""What every layer shares: the data set's size, the log, the API's errors, passwords and
tokens."""
import hashlib
import hmac
import logging
import time

USERS = 1000
PROJECTS = 100
ROLES = ("admin", "member", "reader", "service", "auditor")
PASSWORD = "bench-password"
TOKEN_SECRET = b"bench-token-secret"
NOTIFICATION_TOPIC = "notifications"
LOG = logging.getLogger("keystone.bench")


class NotFound(Exception):
    status = 404


class Unauthorized(Exception):
    status = 401


class Forbidden(Exception):
    status = 403


class BadRequest(Exception):
    status = 400


class InternalError(Exception):
    status = 500


def password_hash(password, salt):
    return salt + "$" + hashlib.sha256((salt + password).encode()).hexdigest()


def token_for(user_id, project_id):
    body = f"{user_id}.{project_id}.{int(time.time())}"
    signature = hmac.new(TOKEN_SECRET, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}"


def token_claims(token):
    """(user id, project id) of a well-signed token, else None."""
    body, _, signature = token.rpartition(".")
    expected = hmac.new(TOKEN_SECRET, body.encode(), hashlib.sha256).hexdigest()
    if not body or not hmac.compare_digest(signature, expected):
        return None
    user_id, project_id, _ = body.split(".")
    return int(user_id), int(project_id)
