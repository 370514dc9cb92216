"""gunicorn settings for production, overridable from the environment.

``GUNICORN_BIND`` (default 0.0.0.0:8000), ``WEB_CONCURRENCY`` workers (default 2 per
core), ``GUNICORN_THREADS`` threads each (default 4), ``GUNICORN_TIMEOUT`` seconds
(default 30). The intake only verifies, de-duplicates and queues, so short timeouts are
right. Before any worker starts, the master checks the configuration once
(``on_starting``): a mistake ends gunicorn with one line instead of a traceback per worker.
"""

import multiprocessing
import os
import sys
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# Never log query strings: the shared webhook token may travel in one.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
max_requests = 10000
max_requests_jitter = 1000
# gunicorn's control socket (gunicornc) sits in one place per user: two servers would share it
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Refuse to start, in one line, when the configuration cannot work."""
    from service.runtime import preflight
    from service.settings import ConfigError, Settings

    try:
        preflight(Settings.from_env())
    except ConfigError as error:
        print(f"Error: configuration: {error}", file=sys.stderr, flush=True)
        sys.exit(4)  # gunicorn's "application failed to load"
