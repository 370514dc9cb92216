"""Liveness and readiness: is the process up; can it reach the ledger, the queue, the rules."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from jobs.inbox import backlog
from webhooks.extension import app_runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    runtime = app_runtime()
    checks: dict[str, Any] = {}
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except SQLAlchemyError as error:
        checks["database"] = {"ok": False, "error": type(error).__name__}
    try:
        runtime.redis.ping()
        checks["queue"] = {"ok": True, "jobs": runtime.queue.count, **backlog(runtime)}
    except redis.RedisError as error:
        checks["queue"] = {"ok": False, "error": type(error).__name__}
    rules = runtime.rules.get()
    checks["rules"] = {
        "ok": rules is not None and not runtime.rules.errors,
        "file": str(runtime.rules.path),
        "digest": rules.digest if rules else None,
        "errors": runtime.rules.errors,
    }
    checks["dry_run"] = runtime.dry_run()
    ready = checks["database"]["ok"] and checks["queue"]["ok"] and rules is not None
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503
