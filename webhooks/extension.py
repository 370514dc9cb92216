"""Where the web tier keeps its Runtime: one per Flask app, in ``app.extensions``."""

from __future__ import annotations

from flask import Flask, current_app

from service.runtime import Runtime

EXTENSION = "leaderleader"


def install(app: Flask, runtime: Runtime) -> None:
    app.extensions[EXTENSION] = runtime


def app_runtime(app: Flask | None = None) -> Runtime:
    """The Runtime of ``app`` (by default the app handling the current request)."""
    return (app or current_app).extensions[EXTENSION]  # type: ignore[no-any-return]
