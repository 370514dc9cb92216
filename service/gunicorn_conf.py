"""gunicorn settings for production, overridable from the environment.

``WEB_CONCURRENCY`` workers (default 2 per core), ``GUNICORN_TIMEOUT`` seconds. The
intake only verifies, de-duplicates and queues, so short timeouts are right.
"""

import multiprocessing
import os

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
