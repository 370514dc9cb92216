"""The WSGI application for gunicorn or any WSGI server: ``webhooks.wsgi:app``.

A configuration mistake ends the process with one line on stderr and exit status 4,
which gunicorn reads as "the application failed to load" (it stops instead of
starting the worker again and again).
"""

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from service.runtime import preflight
from service.settings import ConfigError, Settings
from webhooks.app import create_app


def _first_to_fail() -> bool:
    """Is this the first of the gunicorn master's workers to fail loading the app?

    Marked by a file named after the master (its pid and start time, so a later master
    with the same pid is another one), created exclusively by the first.
    """
    master = os.getppid()
    try:
        started = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "0"
    mark = Path(tempfile.gettempdir()) / f"leaderleader-app-failed-{master}-{started}"
    try:
        os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True
    return True


def _stop_loading(error: ConfigError) -> NoReturn:
    """Say the mistake in one line and end with "the application failed to load".

    Under gunicorn without our settings every worker fails alike, and the first exit
    stops gunicorn. A second worker exiting with that status while gunicorn stops makes
    gunicorn raise again and print a traceback; so only the first says "failed to load".
    The others give gunicorn a moment to stop them (its SIGTERM now ends them at once),
    then leave with a plain failure.
    """
    print(f"Error: configuration: {error}", file=sys.stderr, flush=True)
    if "gunicorn.workers.base" in sys.modules and not _first_to_fail():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        time.sleep(2)
        sys.exit(1)
    sys.exit(4)


try:
    _settings = Settings.from_env()
    preflight(_settings)
    app = create_app(_settings)
except ConfigError as _error:
    _stop_loading(_error)
