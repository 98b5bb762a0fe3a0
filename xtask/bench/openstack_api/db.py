"""Database access: an oslo.db enginefacade in miniature, Keystone's cache decorator, and the
SQL driver."""
import contextlib
import datetime
import functools
import json
import os
import sys
import time

from sqlalchemy import create_engine, event, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from .common import NotFound
from .models import Assignment, Project, User


class EngineFacade:
    """One engine per worker process, made at first use (after gunicorn forked the worker)."""

    def __init__(self):
        self._sessionmaker = None

    def sessionmaker(self):
        if self._sessionmaker is None:
            engine = create_engine(os.environ["BENCH_DB_URL"], pool_size=2, max_overflow=0,
                                   pool_pre_ping=True, pool_recycle=3600)
            depth_file = os.environ.get("BENCH_DEPTH_FILE")
            if depth_file:
                record_depth(engine, depth_file)
            self._sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
        return self._sessionmaker

    @contextlib.contextmanager
    def session(self, writer):
        session = self.sessionmaker()()
        try:
            yield session
            if writer:
                session.commit()
        except Exception:
            session.rollback()
            raise
        finally:
            session.close()

    def _using(self, writer):
        def decorator(function):
            @functools.wraps(function)
            def wrapper(driver, context, *args, **kwargs):
                with self.session(writer) as session:
                    return function(driver, session, context, *args, **kwargs)
            return wrapper
        return decorator

    @property
    def reader(self):
        return self._using(writer=False)

    @property
    def writer(self):
        return self._using(writer=True)


def record_depth(engine, path):
    """Appends the Python stack depth at each statement to `path` (BENCH_DEPTH_FILE)."""
    @event.listens_for(engine, "before_cursor_execute")
    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        frame, depth = sys._getframe(1), 0
        while frame is not None:
            depth, frame = depth + 1, frame.f_back
        with open(path, "a") as out:
            out.write(f"{depth}\n")


facade = EngineFacade()


def retry_on_deadlock(retries=3):
    """oslo.db's wrap_db_retry: a deadlock or lost connection retries the whole transaction."""
    def decorator(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            for attempt in range(retries + 1):
                try:
                    return function(*args, **kwargs)
                except OperationalError:
                    if attempt == retries:
                        raise
                    time.sleep(0.01 * 2 ** attempt)
        return wrapper
    return decorator


class CacheRegion:
    """dogpile.cache's region as Keystone configures it by default: caching disabled, so
    every call goes through get_or_create to its creator."""

    enabled = False

    def __init__(self):
        self.values = {}

    def get_or_create(self, key, creator):
        if self.enabled and key in self.values:
            return self.values[key]
        value = creator()
        if self.enabled:
            self.values[key] = value
        return value


region = CacheRegion()


def memoize(function):
    @functools.wraps(function)
    def wrapper(*args):
        key = function.__qualname__ + repr(args[2:])
        return region.get_or_create(key, lambda: function(*args))
    return wrapper


def traced(name):
    """osprofiler's trace_cls: every public method of a driver is a span (when profiling is
    on: here a per-method call counter)."""
    def decorate_class(cls):
        for attr, function in list(vars(cls).items()):
            if attr.startswith("_") or not callable(function):
                continue

            def make(function, span):
                calls = [0]

                @functools.wraps(function)
                def wrapper(*args, **kwargs):
                    calls[0] += 1
                    return function(*args, **kwargs)
                wrapper.span = span
                return wrapper
            setattr(cls, attr, make(function, f"{name}.{attr}"))
        return cls
    return decorate_class


@traced("identity_driver")
class SqlDriver:
    """The identity and assignment backends' SQL driver."""

    @memoize
    @retry_on_deadlock()
    @facade.reader
    def get_user(self, session, context, user_id):
        user = session.execute(select(User).where(User.id == user_id)).scalar_one_or_none()
        if user is None:
            raise NotFound(f"user {user_id}")
        return {"id": user.id, "name": user.name, "domain_id": user.domain_id,
                "enabled": user.enabled, "password_hash": user.password_hash,
                "extra": json.loads(user.extra)}

    @retry_on_deadlock()
    @facade.reader
    def get_project(self, session, context, project_id):
        project = session.get(Project, project_id)
        if project is None:
            raise NotFound(f"project {project_id}")
        return {"id": project.id, "name": project.name, "domain_id": project.domain_id,
                "description": project.description, "enabled": project.enabled}

    @retry_on_deadlock()
    @facade.reader
    def list_role_assignments(self, session, context, user_id, project_id=None):
        query = select(Assignment).where(Assignment.user_id == user_id)
        if project_id is not None:
            query = query.where(Assignment.project_id == project_id)
        rows = session.execute(query).unique().scalars().all()
        return [{"role": {"id": a.role.id, "name": a.role.name},
                 "project": {"id": a.project.id, "name": a.project.name}} for a in rows]

    @retry_on_deadlock()
    @facade.writer
    def record_activity(self, session, context, user_id):
        session.execute(update(User).where(User.id == user_id)
                        .values(last_active_at=datetime.datetime.utcnow()))
