"""The real OpenStack Keystone's public API as a WSGI application, for the service benchmarks.

usage (the bench's set-up writes keystone.conf, see xtask/src/bench/keystone.rs):
  OS_KEYSTONE_CONFIG_DIR=DIR [BENCH_DEPTH_FILE=FILE] \
      gunicorn --workers 2 --bind 127.0.0.1:PORT --chdir xtask/bench keystone_wsgi:application

Keystone parses the process's command line with oslo.config, which would take gunicorn's
options for its own and refuse them: it is given the program name only. With BENCH_DEPTH_FILE,
each SQL statement appends to FILE the number of Python frames on the stack where SQLAlchemy
hands it to the driver (its `before_cursor_execute` event, on every engine Keystone makes).
"""

import os
import sys

sys.argv = sys.argv[:1]

from keystone.server import wsgi  # noqa: E402 (after the command line is emptied)


def record_depth(path):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        frame, depth = sys._getframe(1), 0
        while frame is not None:
            depth, frame = depth + 1, frame.f_back
        with open(path, "a") as out:
            out.write(f"{depth}\n")


if os.environ.get("BENCH_DEPTH_FILE"):
    record_depth(os.environ["BENCH_DEPTH_FILE"])

application = wsgi.initialize_public_application()
