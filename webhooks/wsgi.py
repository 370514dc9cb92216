"""The WSGI application for gunicorn or any WSGI server: ``webhooks.wsgi:app``.

A configuration mistake ends the process with one line on stderr and exit status 4,
which gunicorn reads as "the application failed to load" (it stops instead of
starting the worker again and again).
"""

import sys

from service.runtime import preflight
from service.settings import ConfigError, Settings
from webhooks.app import create_app

try:
    _settings = Settings.from_env()
    preflight(_settings)
    app = create_app(_settings)
except ConfigError as _error:
    print(f"Error: configuration: {_error}", file=sys.stderr, flush=True)
    sys.exit(4)
