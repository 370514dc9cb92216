"""The Flask application factory: one for the web tier, the worker and the tests."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from service.logs import configure_logging
from service.runtime import Runtime
from service.settings import Settings, check_production
from webhooks.extension import install

log = logging.getLogger("leaderleader.web")


def create_app(
    settings: Settings | None = None, *, runtime: Runtime | None = None
) -> Flask:
    settings = settings or (runtime.settings if runtime else Settings.from_env())
    check_production(settings)
    configure_logging(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    install(app, runtime or Runtime.build(settings, migrate=settings.migrate_on_start))

    from webhooks import health, intake, metrics

    app.register_blueprint(intake.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    from webhooks import openapi, reports
    app.register_blueprint(reports.bp)
    from webhooks import activity
    app.register_blueprint(activity.bp)
    app.register_blueprint(openapi.bp)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        response = jsonify(error=error.description or error.name, status=error.code)
        return response, error.code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        log.exception("web.error")
        return jsonify(error="internal error; see the service log", status=500), 500

    return app
