"""An OpenStack-like identity API for `cargo xtask bench`: a WSGI application served by
gunicorn's sync workers, built like Keystone or Nova's API. A request goes through a stack of
paste/oslo-style middleware (proxy headers, request id, error catching, CORS, health check,
body size limit, profiler, URL normalizing, token check, auth context, JSON body parsing,
request context, access log, audit, version routing; `middleware.py`), a router and a resource
wrapper (`wsgi.py`) to a controller with policy and schema decorators (`controllers.py`), a
manager (`identity.py`), a driver with enginefacade-style reader/writer sessions and retry on
deadlock (`db.py`), and SQLAlchemy's ORM (`models.py`) on PyMySQL and MariaDB, with several
statements per request; each request also sends one oslo.messaging notification to RabbitMQ on
the worker's persistent connection, and logs a line.

usage (from xtask/bench):
  python -m openstack_api init DB_URL TRANSPORT_URL
      (re)creates and fills the tables, and deletes the notification queue
  BENCH_DB_URL=... BENCH_TRANSPORT_URL=... [BENCH_LOG_DIR=DIR] [BENCH_DEPTH_FILE=FILE] \
      gunicorn --workers 2 --bind 127.0.0.1:PORT openstack_api.wsgi:app

DB_URL is a SQLAlchemy URL (mysql+pymysql://user:password@127.0.0.1:port/database),
TRANSPORT_URL an oslo.messaging one (rabbit://guest:guest@127.0.0.1:port/). With
BENCH_LOG_DIR, each worker logs a line per request to DIR/api-PID.log. With BENCH_DEPTH_FILE,
each SQL statement appends to FILE the number of Python frames on the stack where SQLAlchemy
hands it to the driver (its `before_cursor_execute` event), to check the depth the benchmark
claims.

Endpoints (the request mix is xtask/bench/load.lua's `openstack`):
  POST /v3/auth/tokens                     password authentication, returns X-Subject-Token
  GET  /v3/auth/tokens                     validates the token in X-Subject-Token
  GET  /v3/users/ID                        a user and the projects it has roles on
  GET  /v3/projects/ID/users/ID/roles      a user's roles on a project
"""
