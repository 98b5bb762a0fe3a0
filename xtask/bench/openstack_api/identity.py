"""Notifications and the managers: the business logic above the driver."""
import functools
import os
import warnings

from .common import NOTIFICATION_TOPIC, NotFound, Unauthorized, password_hash
from .db import SqlDriver


class Notifier:
    """oslo.messaging's notifier on the rabbit transport, made at first use in each worker
    (its connection pool keeps one connection open)."""

    def __init__(self):
        self._notifier = None

    def info(self, context, event_type, payload):
        if self._notifier is None:
            self._notifier = make_notifier(os.environ["BENCH_TRANSPORT_URL"])
        self._notifier.info(context.to_dict(), event_type, payload)


def make_notifier(url):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging
        from oslo_config import cfg
    conf = cfg.ConfigOpts()
    conf([], project="bench", default_config_files=[])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    return oslo_messaging.Notifier(transport, publisher_id="identity.bench-api",
                                   driver="messaging", topics=[NOTIFICATION_TOPIC])


notifier = Notifier()


def emits(event_type):
    """Keystone's notifications decorator: a manager call that succeeded is announced."""
    def decorator(function):
        @functools.wraps(function)
        def wrapper(manager, context, *args, **kwargs):
            result = function(manager, context, *args, **kwargs)
            notifier.info(context, event_type, {"resource_info": args[0] if args else None,
                                                "request_id": context.request_id})
            return result
        return wrapper
    return decorator


def exception_translated(function):
    """Drivers' errors become the API's."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except LookupError as e:
            raise NotFound(str(e)) from e
    return wrapper


# --- managers ------------------------------------------------------------------------------

class Manager:
    """Keystone's manager: business logic, delegating storage to its driver."""

    def __init__(self, driver):
        self.driver = driver

    def __getattr__(self, name):
        return getattr(self.driver, name)


class IdentityManager(Manager):
    @emits("identity.authenticate")
    @exception_translated
    def authenticate(self, context, user_id, password, project_id):
        user = self.driver.get_user(context, user_id)
        salt = user["password_hash"].split("$", 1)[0]
        if not user["enabled"] or password_hash(password, salt) != user["password_hash"]:
            raise Unauthorized("the password is wrong")
        roles = assignments.roles_for(context, user_id, project_id)
        if not roles:
            raise Unauthorized(f"no role on project {project_id}")
        if user_id % 10 == 0:
            self.driver.record_activity(context, user_id)
        return user, roles

    @emits("identity.user.read")
    @exception_translated
    def get_user_with_projects(self, context, user_id):
        user = self.driver.get_user(context, user_id)
        grants = self.driver.list_role_assignments(context, user_id)
        projects = {g["project"]["id"]: g["project"] for g in grants}
        return user, sorted(projects.values(), key=lambda p: p["id"])

    @emits("identity.token.validate")
    @exception_translated
    def validate(self, context, user_id, project_id):
        user = self.driver.get_user(context, user_id)
        project = self.driver.get_project(context, project_id)
        roles = assignments.roles_for(context, user_id, project_id)
        return user, project, roles


class AssignmentManager(Manager):
    @exception_translated
    def roles_for(self, context, user_id, project_id):
        grants = self.driver.list_role_assignments(context, user_id, project_id)
        return [g["role"] for g in grants]

    @emits("identity.role_assignment.read")
    @exception_translated
    def project_roles(self, context, project_id, user_id):
        project = self.driver.get_project(context, project_id)
        roles = self.roles_for(context, user_id, project_id)
        return project, roles


identity = IdentityManager(SqlDriver())
assignments = AssignmentManager(SqlDriver())
