"""Liveness and readiness: is the process up; can it reach the ledger, the queue, the rules."""

from __future__ import annotations

from typing import Any

import redis
from flask import Blueprint, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from jobs.inbox import backlog
from jobs.outstanding import outstanding
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
    if not ready:
        return jsonify(status="not ready", checks=checks), 503
    # Work piling up is the workers' problem, not this web process's: it still takes
    # deliveries (a 503 here would make a load balancer turn Jira's webhooks away), so
    # readiness stays 200 and says "degraded", with the reason.
    try:
        backlog_now = outstanding(runtime)
    except (redis.RedisError, SQLAlchemyError) as error:
        checks["backlog"] = {"ok": False, "error": type(error).__name__}
        return jsonify(status="degraded", reasons=["cannot count the backlog"], checks=checks)
    limit = runtime.settings.backlog_max_age_seconds
    late = backlog_now.oldest_seconds is not None and backlog_now.oldest_seconds > limit
    checks["backlog"] = {"ok": not late, "max_age_seconds": limit, **backlog_now.to_dict()}
    if late:
        reason = (f"the oldest outstanding delivery or comment is {backlog_now.oldest_seconds:.0f} s "
                  f"old (more than {limit} s): are the workers running?")
        return jsonify(status="degraded", reasons=[reason], checks=checks)
    return jsonify(status="ready", checks=checks)
